"""Entry point of the `auditdesk` command; dispatches to the command modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from auditdesk import __version__

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "auditdesk.cli.demo",
    "auditdesk.cli.audit",
    "auditdesk.cli.runs",
    "auditdesk.cli.monitor",
    "auditdesk.cli.report",
    "auditdesk.cli.signing",
    "auditdesk.cli.inspect",
    "auditdesk.cli.packs",
    "auditdesk.cli.gui",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditdesk",
        description=(
            "Check, offline, whether a fine-tuned language model behaves "
            "differently from the base model it was made from."
        ),
    )
    parser.add_argument("--version", action="version", version=f"AuditDesk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `auditdesk packs list | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("auditdesk: interrupted; work already stored is kept.", file=sys.stderr)
        return 130
    except Exception as exc:  # the user gets one line; details with AUDITDESK_DEBUG=1
        if os.environ.get("AUDITDESK_DEBUG"):
            raise
        print(f"auditdesk: error: {_user_message(exc)}", file=sys.stderr)
        return 1


def _user_message(exc: Exception) -> str:
    from auditdesk.core.errors import describe_error

    return describe_error(exc)


if __name__ == "__main__":
    sys.exit(main())
