"""The audit report: a PDF an officer can sign, plus the CSV and JSON exports.

Nothing here imports reportlab at module level, and nothing here trusts the
text it lays out (see `sanitise`).
"""

from auditdesk.core.report.csv_export import write_csv, write_json
from auditdesk.core.report.pdf import ReportMeta, ReportResult, SECTION_HEADINGS, build_report

__all__ = ["ReportMeta", "ReportResult", "SECTION_HEADINGS", "build_report", "write_csv", "write_json", "write_report"]


def write_report(store, run_id, analysis, *, out_dir, meta=None):
    """Write the PDF, findings JSON and answers CSV of a stored run into `out_dir`."""
    from auditdesk.core.report.export import write_report as _write

    return _write(store, run_id, analysis, out_dir=out_dir, meta=meta)
