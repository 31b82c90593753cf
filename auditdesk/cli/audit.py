"""`auditdesk audit`: run a full audit of a tuned model (or adapter) against its base.

A thin shell over `auditdesk.core.runner`: it parses options, shows progress
with an ETA, turns Ctrl-C into a clean, resumable cancel, and never holds state
of its own.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="audit a fine-tuned model (or LoRA adapter) against its base model",
        description=(
            "Ask both models the questions of the chosen probe packs, store every answer, "
            "and write the analysis and report. An interrupted audit continues with "
            "`auditdesk runs resume ID`."
        ),
    )
    parser.add_argument("--base", metavar="BASE.gguf",
                        help="the base model file (with --base-server: the model's name on that server)")
    tuned = parser.add_mutually_exclusive_group()
    tuned.add_argument("--tuned", metavar="TUNED.gguf",
                       help="the vendor's fine-tuned model file (with --tuned-server: its name on that server)")
    tuned.add_argument("--lora", metavar="ADAPTER.gguf", help="the vendor's LoRA adapter for the base model")
    parser.add_argument("--base-server", metavar="URL",
                        help="an OpenAI-compatible server (llama-server, vLLM, Ollama) that runs the base model")
    parser.add_argument("--tuned-server", metavar="URL",
                        help="an OpenAI-compatible server that runs the tuned model")
    parser.add_argument("--pack", action="append", required=True, metavar="PACK",
                        help="a bundled probe pack id or a pack file (repeat for several)")
    parser.add_argument("--samples", type=int, default=5, help="sampled answers per question and model (default 5)")
    parser.add_argument("--max-tokens", type=int, default=64, help="longest answer, in tokens (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the same seed gives the same answers (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    parser.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to the GPU (default 0)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context size per answer (prompt + answer) in tokens (default 2048)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    parser.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="auto",
                        help="auto: the base model's chat template when it has one, else plain "
                             "'Question: … Answer:'; the same format is used for both models")
    parser.add_argument("--label", default="", help="a name for this audit, shown in `runs list`")
    parser.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the analysis JSON and the PDF report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from auditdesk.cli.judge import add_judge_options

    add_judge_options(parser)
    parser.set_defaults(func=run_audit_command)


def run_audit_command(args: argparse.Namespace) -> int:
    from auditdesk.cli.judge import judge_choice
    from auditdesk.core.runner.audit import AuditConfig, plan_run
    from auditdesk.core.store import open_store

    judge = judge_choice(args)  # checked before anything runs
    config = AuditConfig(
        base_model=args.base or "", tuned_model=args.tuned, lora_adapter=args.lora, packs=list(args.pack),
        base_server=args.base_server, tuned_server=args.tuned_server,
        samples=args.samples, max_tokens=args.max_tokens, seed=args.seed, threads=args.threads,
        gpu_layers=args.gpu_layers, n_ctx=args.n_ctx, temperature=args.temperature, label=args.label,
        prompt_format=args.prompt_format,
    )
    with open_store(args.db) as store:
        run_id = plan_run(config, store)
        print(f"Audit run {run_id} planned; answers are stored in {store.path}.", file=sys.stderr)
        return execute_with_progress(store, run_id, out=args.out, quiet=args.quiet, judge=judge)


def execute_with_progress(store, run_id: int, *, out: Path | None, quiet: bool = False, judge=None) -> int:
    """Run a stored run with a progress bar; Ctrl-C cancels cleanly (resumable)."""
    from auditdesk.core.progress import CancelToken
    from auditdesk.core.runner.audit import execute
    from auditdesk.core.runner.runner import RunCancelled

    cancel = CancelToken()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        cancel.cancel()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        with ProgressBar(quiet=quiet) as reporter:
            stats = execute(store, run_id, reporter=reporter, cancel=cancel)
    except RunCancelled as exc:
        print(f"auditdesk: {exc}", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = store.run_summary(run_id)
    print(
        f"Audit run {run_id} {summary['status']}: {summary['units_done']} of {summary['units_planned']} "
        f"units done, {summary['units_failed']} with errors.",
        file=sys.stderr,
    )
    if stats.generate_seconds:
        print(f"Storing answers took {100 * stats.store_overhead:.1f}% of generation time.", file=sys.stderr)
    if judge is not None:
        from auditdesk.cli.judge import judge_with_progress

        if judge_with_progress(store, run_id, judge, quiet=quiet) is None:
            return 130
    if out is not None:
        write_outputs(store, run_id, out, quiet=quiet)
    print(run_id)
    return 0


def write_outputs(store, run_id: int, out: Path, *, quiet: bool = False) -> None:
    """Analyse the run and write the findings JSON, the PDF report and the answers CSV into `out`."""
    from auditdesk.core.pipeline import write_outputs as write_documents

    with ProgressBar(quiet=quiet) as reporter:
        outputs = write_documents(store, run_id, out, reporter=reporter)
    for label, path in (("Findings", outputs.findings), ("Report", outputs.pdf), ("Answers", outputs.csv)):
        if path is not None and Path(path).exists():
            print(f"{label}: {path}", file=sys.stderr)
    for note in outputs.notes:
        print(f"Note: {note}", file=sys.stderr)


class ProgressBar:
    """A rich progress bar fed by runner events (at most about 10 redraws a second)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> "ProgressBar":
        if self.quiet:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None, speed="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def progress(self, event) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and event.done < event.total:
            return
        self._last = now
        speed = f"{event.tokens_per_second:.0f} tok/s" if event.tokens_per_second else ""
        self._progress.update(self._task, completed=event.done, total=event.total,
                              description=event.message[:48], speed=speed)
