"""The judge options shared by `auditdesk audit` and `auditdesk report`, and grading with a progress bar.

A thin shell over `auditdesk.core.judge`: no judge option given means nothing
here runs, nothing is loaded and the results are exactly those without a judge.
"""

from __future__ import annotations

import argparse
import signal
import sys


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """Add --judge, --judge-server, --judge-name and --judge-all to a command."""
    group = parser.add_argument_group(
        "model judge (optional)",
        "a third model grades answers for alignment and coherence; it is first tested on a labelled "
        "calibration set, and a judge that fails it is shown in the report but decides nothing (docs/judge.md)")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--judge", metavar="JUDGE.gguf", help="a local GGUF model that grades the answers")
    choice.add_argument("--judge-server", metavar="URL",
                        help="an OpenAI-compatible server (with token log-probabilities) that runs the judge")
    group.add_argument("--judge-name", metavar="NAME", help="the judge model's name on --judge-server "
                       "(default: the server's only model)")
    group.add_argument("--judge-all", action="store_true",
                       help="grade every answer (default: the misalignment and safety categories and flagged probes)")


def judge_choice(args: argparse.Namespace):
    """The JudgeChoice the options describe, or None when no judge was chosen."""
    path, server = getattr(args, "judge", None), getattr(args, "judge_server", None)
    if not path and not server:
        if getattr(args, "judge_name", None) or getattr(args, "judge_all", False):
            from auditdesk.core.errors import AuditDeskError

            raise AuditDeskError("--judge-name and --judge-all need a judge: add --judge FILE or --judge-server URL.")
        return None
    from auditdesk.core.judge import JudgeChoice

    return JudgeChoice(path=str(path) if path else None, server=server, name=getattr(args, "judge_name", None),
                       grade_all=bool(getattr(args, "judge_all", False)), threads=getattr(args, "threads", None),
                       gpu_layers=int(getattr(args, "gpu_layers", 0) or 0))


def judge_with_progress(store, run_id: int, choice, *, quiet: bool = False) -> dict | None:
    """Grade a run with the judge and store the new findings; Ctrl-C stops it (a rerun continues). None if cancelled."""
    from auditdesk.cli.progress import ProgressBar
    from auditdesk.core.judge import judge_and_analyse
    from auditdesk.core.progress import Cancelled, CancelToken

    cancel = CancelToken()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: cancel.cancel())
    try:
        with ProgressBar(quiet=quiet) as reporter:
            findings = judge_and_analyse(store, run_id, choice, reporter=reporter, cancel=cancel)
    except Cancelled:
        print("auditdesk: judge grading was cancelled; grades so far are kept, and the same command continues "
              "where it stopped.", file=sys.stderr)
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(judge_summary(findings.get("judge") or {}), file=sys.stderr)
    return findings


def judge_summary(judge: dict) -> str:
    """One plain line on the judge's calibration and what its grades may do."""
    from auditdesk.core.judge.calibration import calibration_sentence

    return calibration_sentence(judge)
