"""`auditdesk report RUN --pdf FILE [--json FILE] [--csv FILE]`: export a stored audit run.

Reads the database only; every file is written atomically, so an interrupted
export leaves no half-written report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="export an audit run as a PDF report, findings JSON and answers CSV",
        description="Export a stored, analysed audit run: the PDF report an officer signs, the findings "
                    "file (JSON) and every answer (CSV).",
    )
    parser.add_argument("run_id", type=int, metavar="RUN", help="run id (see `auditdesk runs list`)")
    parser.add_argument("--pdf", type=Path, default=None, metavar="FILE", help="write the PDF report here")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the findings file (JSON) here")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write one row per answer (CSV) here")
    parser.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")
    parser.add_argument("--organisation", default="", help="organisation named on the cover")
    parser.add_argument("--auditor", default="", help="auditor named on the cover and the sign-off block")
    parser.add_argument("--title", default="", help="report title (default: Fine-tuned model behaviour audit)")
    parser.add_argument("--notes", default="", help="a short note from the auditor for the cover")
    parser.add_argument("--reanalyse", action="store_true",
                        help="analyse the stored answers again before exporting (default: reuse the stored analysis)")
    parser.set_defaults(func=report_command)


def report_command(args) -> int:
    from auditdesk.core.errors import AuditDeskError
    from auditdesk.core.report.export import export_run
    from auditdesk.core.report.pdf import ReportMeta
    from auditdesk.core.store import open_store

    if not (args.pdf or args.json or args.csv):
        raise AuditDeskError("say what to export: add --pdf FILE, --json FILE and/or --csv FILE.")
    meta = ReportMeta(organisation=args.organisation, auditor=args.auditor, notes=args.notes)
    if args.title:
        meta.title = args.title
    store = open_store(args.db)
    try:
        findings = None
        if args.reanalyse or store.latest_analysis(args.run_id) is None:
            from auditdesk.cli.audit import ProgressBar
            from auditdesk.core.pipeline import analyse_run

            with ProgressBar() as reporter:
                findings = analyse_run(store, args.run_id, reporter=reporter)
        result = export_run(store, args.run_id, pdf=args.pdf, json_path=args.json, csv_path=args.csv, meta=meta,
                            findings=findings)
    finally:
        store.close()
    for label, path in (("Findings", args.json), ("Answers", args.csv)):
        if path:
            print(f"{label} written to {path}", file=sys.stderr)
    if result is not None:
        print(f"Report written to {result.path} ({result.pages} pages, {result.seconds:.1f} s)", file=sys.stderr)
        if result.missing_glyphs:
            print(f"Note: {result.missing_glyphs} characters had no glyph in the report fonts; the report says so.",
                  file=sys.stderr)
    return 0
