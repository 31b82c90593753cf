"""For CI pipelines: `--fail-on` (exit 3 when met) and `--junit FILE`, shared by `audit` and `monitor run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_FAIL_ON = 3  # the --fail-on condition was met (0: not met, 1: error, 130: interrupted)


def add_ci_options(parser: argparse.ArgumentParser) -> None:
    from auditdesk.core.report.junit import FAIL_ON

    parser.add_argument("--fail-on", choices=FAIL_ON, default=None,
                        help="exit with code 3 when a category is concerning (or changed: changed or concerning)")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE",
                        help="write JUnit XML with one test case per category (failures per --fail-on, "
                             "default concerning)")


def ci_gate(findings: dict, *, fail_on: str | None, junit: Path | None, seconds: float = 0.0,
            suite: str | None = None) -> int:
    """Write the JUnit file if asked; EXIT_FAIL_ON when a category meets --fail-on, else 0."""
    from auditdesk.core.report.junit import failing_categories, junit_xml

    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(findings, fail_on=fail_on or "concerning", suite=suite, seconds=seconds))
        print(f"JUnit: {junit}", file=sys.stderr)
    if fail_on is None:
        return 0
    failing = failing_categories(findings, fail_on)
    if failing:
        print(f"auditdesk: --fail-on {fail_on} met in {len(failing)} categories: {', '.join(failing)}",
              file=sys.stderr)
        return EXIT_FAIL_ON
    return 0
