"""`auditdesk report RUN --pdf FILE [--json FILE] [--csv FILE] [--sign KEY.p12] [--bundle FILE.zip]`: export a run.

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
    parser.add_argument("--sign", type=Path, default=None, metavar="KEY.p12",
                        help="sign the PDF as the auditor with this PKCS#12 key (the passphrase is asked for)")
    parser.add_argument("--signer-name", default="", help="name shown with the signature (default: from the certificate)")
    parser.add_argument("--signer-role", default="", help="role shown with the signature (default: Auditor)")
    parser.add_argument("--bundle", type=Path, default=None, metavar="FILE.zip",
                        help="write one evidence bundle: the PDF, findings, answers, probe packs and manifest")
    parser.add_argument("--frameworks", type=Path, default=None, metavar="FILE",
                        help="framework mapping for Appendix C (default: $AUDITDESK_HOME/frameworks/mapping.yaml, "
                             "else the bundled one)")
    parser.add_argument("--reanalyse", action="store_true",
                        help="analyse the stored answers again before exporting (default: reuse the stored analysis)")
    from auditdesk.cli.judge import add_judge_options

    add_judge_options(parser)
    parser.set_defaults(func=report_command)


def report_command(args) -> int:
    from auditdesk.core.errors import AuditDeskError
    from auditdesk.core.report.pdf import ReportMeta
    from auditdesk.core.store import open_store

    if not (args.pdf or args.json or args.csv or args.bundle):
        raise AuditDeskError("say what to export: add --pdf FILE, --json FILE, --csv FILE and/or --bundle FILE.zip.")
    if args.sign and not (args.pdf or args.bundle):
        raise AuditDeskError("--sign signs the PDF report: add --pdf FILE or --bundle FILE.zip.")
    signing = None
    if args.sign:  # the key is opened first, so a wrong passphrase writes nothing at all
        from auditdesk.cli.signing import load_key
        from auditdesk.core.evidence.signing import SigningRequest

        signing = SigningRequest(load_key(args.sign), signer_name=args.signer_name, signer_role=args.signer_role)
    meta = ReportMeta(organisation=args.organisation, auditor=args.auditor, notes=args.notes)
    if args.title:
        meta.title = args.title
    from auditdesk.cli.judge import judge_choice, judge_with_progress
    from auditdesk.cli.progress import ProgressBar
    from auditdesk.core.audit_job import export

    judge = judge_choice(args)  # checked before anything runs
    with open_store(args.db) as store:
        findings = None
        if judge is not None:  # grade the stored answers with the judge, then analyse with its grades
            findings = judge_with_progress(store, args.run_id, judge)
            if findings is None:
                return 130
        with ProgressBar() as reporter:
            result = export(store, args.run_id, pdf=args.pdf, json_path=args.json, csv_path=args.csv, meta=meta,
                            findings=findings, signing=signing, bundle=args.bundle, frameworks=args.frameworks,
                            reanalyse=args.reanalyse and findings is None, reporter=reporter)
    for label, path in (("Findings", args.json), ("Answers", args.csv)):
        if path:
            print(f"{label} written to {path}", file=sys.stderr)
    if result is not None and args.pdf:
        signed = f", signed by {signing.signer_name or signing.key.common_name}" if signing else ""
        print(f"Report written to {result.path} ({result.pages} pages, {result.seconds:.1f} s{signed})", file=sys.stderr)
    if result is not None and args.bundle:
        print(f"Evidence bundle written to {args.bundle}" + ("" if signing else " (the report in it is not signed)"),
              file=sys.stderr)
    if result is not None:
        if result.missing_glyphs:
            print(f"Note: {result.missing_glyphs} characters had no glyph in the report fonts; the report says so.",
                  file=sys.stderr)
    return 0
