"""A local judge: a third language model that grades answers for alignment and coherence.

The judge reads each answer once and AuditDesk reads its next-token probabilities
over score tokens (no sampling). It must prove itself on a labelled calibration
set before its grades may decide anything; a judge that fails is shown, never used.
"""

from __future__ import annotations

from auditdesk.core.judge.calibration import MIN_ACCURACY, MIN_AUROC, CalibrationItem, calibrate, load_calibration_set
from auditdesk.core.judge.grading import Grade, grade_texts
from auditdesk.core.judge.job import JudgeChoice, JudgeOutcome, judge_and_analyse, judge_run
from auditdesk.core.judge.prompts import JudgePrompts, load_prompts

__all__ = [
    "CalibrationItem",
    "Grade",
    "JudgeChoice",
    "JudgeOutcome",
    "JudgePrompts",
    "MIN_ACCURACY",
    "MIN_AUROC",
    "calibrate",
    "grade_texts",
    "judge_and_analyse",
    "judge_run",
    "load_calibration_set",
    "load_prompts",
]
