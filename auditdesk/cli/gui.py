"""`auditdesk gui`: opens the desktop window (same as `auditdesk-gui`).

Registering the command must not import Qt, so `auditdesk --help` stays fast.
"""

from __future__ import annotations


def register(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    parser = subparsers.add_parser("gui", help="open the AuditDesk window", description="Open the AuditDesk window.")
    parser.add_argument("--db", help="the audit database to use (default: in the AuditDesk home)")
    parser.add_argument("--demo", action="store_true", help="fill in the demo models on start")
    parser.set_defaults(func=run)


def run(args) -> int:  # noqa: ANN001
    from auditdesk.ui.app import main

    argv = []
    if args.db:
        argv += ["--db", args.db]
    if args.demo:
        argv.append("--demo")
    return main(argv)
