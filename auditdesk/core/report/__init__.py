"""The audit report: a PDF an officer can sign, plus the CSV and JSON exports.

Nothing here imports reportlab at module level, and nothing here trusts the
text it lays out (see `sanitise`).
"""

from auditdesk.core.report.csv_export import write_csv, write_json
from auditdesk.core.report.pdf import ReportMeta, ReportResult, SECTION_HEADINGS, build_report

__all__ = ["ReportMeta", "ReportResult", "SECTION_HEADINGS", "build_report", "write_csv", "write_json"]

