"""Divergence analysis: turns stored answers into the findings document.

Import `analyse` from here; nothing in this package reads the database for
answers or imports Qt.
"""

from auditdesk.core.analysis.findings import analyse
from auditdesk.core.analysis.records import AnswerRecord, LikelihoodRecord

__all__ = ["analyse", "AnswerRecord", "LikelihoodRecord"]
