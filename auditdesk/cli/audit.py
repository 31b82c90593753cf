"""`auditdesk audit`: run a full audit of a tuned model (or adapter) against its base.

A thin shell over `auditdesk.core.audit_job`: it parses options, shows progress
with an ETA, turns Ctrl-C into a clean, resumable cancel, and never holds state
of its own.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from auditdesk.cli.progress import ProgressBar


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
    from auditdesk.core.audit_job import AuditConfig

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
    add_setting_options(parser, AuditConfig(base_model=""))
    parser.add_argument("--label", default="", help="a name for this audit, shown in `runs list`")
    parser.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the analysis JSON and the PDF report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no time estimate")
    from auditdesk.cli.ci import add_ci_options
    from auditdesk.cli.judge import add_judge_options

    add_judge_options(parser)
    add_ci_options(parser)
    parser.set_defaults(func=run_audit_command)


def add_setting_options(parser: argparse.ArgumentParser, defaults) -> None:  # noqa: ANN001
    """The options of every setting that shapes the answers; defaults from the job configuration."""
    from auditdesk.core.engine import BACKENDS

    d = defaults
    parser.add_argument("--lora-scale", type=float, default=d.lora_scale, help=f"LoRA adapter scale (default {d.lora_scale:g})")
    parser.add_argument("--samples", type=int, default=d.samples, help=f"sampled answers per question and model (default {d.samples})")
    parser.add_argument("--max-tokens", type=int, default=d.max_tokens, help=f"longest answer, in tokens (default {d.max_tokens})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"run seed; the same seed gives the same answers (default {d.seed})")
    parser.add_argument("--threads", type=int, default=d.threads, help="CPU threads (default: physical cores)")
    parser.add_argument("--gpu-layers", type=int, default=d.gpu_layers, help=f"layers to offload to the GPU (default {d.gpu_layers})")
    parser.add_argument("--n-ctx", type=int, default=d.n_ctx, help=f"context size per answer (prompt + answer) in tokens (default {d.n_ctx})")
    parser.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature (default {d.temperature:g})")
    parser.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling: keep the likeliest tokens up to this probability (default {d.top_p:g})")
    parser.add_argument("--top-k", type=int, default=d.top_k, help=f"sample among this many likeliest tokens (default {d.top_k})")
    parser.add_argument("--time-limit", type=float, default=d.time_limit_s, help=f"longest computing time for one answer, in seconds; answers generated together share each step's time (default {d.time_limit_s:g})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"answers generated together (default {d.batch_size})")
    parser.add_argument("--backend", choices=BACKENDS, default=d.backend, help=f"how models are run (default {d.backend})")
    parser.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default=d.prompt_format,
                        help="auto: the base model's chat template when it has one, else plain "
                             "'Question: … Answer:'; the same format is used for both models")


def setting_values(args: argparse.Namespace) -> dict:
    """AuditConfig fields from the options `add_setting_options` added."""
    return dict(lora_scale=args.lora_scale, samples=args.samples, max_tokens=args.max_tokens, seed=args.seed,
                threads=args.threads, gpu_layers=args.gpu_layers, n_ctx=args.n_ctx, temperature=args.temperature,
                top_p=args.top_p, top_k=args.top_k, time_limit_s=args.time_limit, batch_size=args.batch_size,
                backend=args.backend, prompt_format=args.prompt_format)


def run_audit_command(args: argparse.Namespace) -> int:
    from auditdesk.cli.judge import judge_choice
    from auditdesk.core.audit_job import AuditConfig
    from auditdesk.core.store import open_store

    judge = judge_choice(args)  # checked before anything runs
    config = AuditConfig(base_model=args.base or "", tuned_model=args.tuned, lora_adapter=args.lora,
                         packs=list(args.pack), base_server=args.base_server, tuned_server=args.tuned_server,
                         label=args.label, **setting_values(args))
    with open_store(args.db) as store:
        return run_with_progress(store, config=config, out=args.out, quiet=args.quiet, judge=judge,
                                 fail_on=args.fail_on, junit=args.junit)


def run_with_progress(store, *, config=None, run_id: int | None = None, out: Path | None,  # noqa: ANN001
                      quiet: bool = False, judge=None, fail_on: str | None = None,  # noqa: ANN001
                      junit: Path | None = None) -> int:
    """Plan (or continue) a run and run it with a progress bar; Ctrl-C cancels cleanly (resumable).

    `judge` (a JudgeChoice) grades the answers once they are all generated, before the files are written.
    `fail_on` / `junit` analyse the run (if --out did not) and gate on its categories (exit 3, see cli.ci).
    """
    import time

    started = time.monotonic()
    from auditdesk.core import audit_job
    from auditdesk.core.progress import CancelToken

    cancel = CancelToken()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        cancel.cancel()

    def on_planned(planned: int, units: int) -> None:
        print(f"Audit run {planned} planned ({units} answers and scores); they are stored in {store.path}.",
              file=sys.stderr)
        if not quiet:
            job = audit_job.AuditConfig.from_dict(store.get_run(planned)["config"])
            estimate = audit_job.estimate_seconds(job, items=audit_job.run_items(store, planned))
            print(f"Estimated time on this computer: {audit_job.format_duration(estimate['seconds'])} "
                  f"(from a short measurement of both models' speed).", file=sys.stderr)

    if config is not None:  # planned before the progress bar, so a refused input prints one line
        run_id = audit_job.plan_run(config, store)
        on_planned(run_id, len(store.units(run_id)))
    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        with ProgressBar(quiet=quiet) as reporter:
            result = audit_job.run_job(store, run_id=run_id, reporter=reporter, cancel=cancel, analyse=False)
    except audit_job.RunCancelled as exc:
        print(f"auditdesk: {exc}", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = store.run_summary(result.run_id)
    print(f"Audit run {result.run_id} {summary['status']}: {summary['units_done']} of {summary['units_planned']} "
          f"units done, {summary['units_failed']} with errors.", file=sys.stderr)
    if summary["answers_reused"] or summary["likelihoods_reused"]:
        print(f"Reused {summary['answers_reused']} answers and {summary['likelihoods_reused']} likelihood scores "
              "stored by earlier runs under the same key.", file=sys.stderr)
    if summary["answers_cut_by_time"]:
        limit = (store.get_run(result.run_id).get("config") or {}).get("time_limit_s")
        print(f"Note: {summary['answers_cut_by_time']} answers were cut by the time limit ({limit:g} s of computing "
              "each); their length depends on this computer's speed, so running the audit again may not give them "
              "again. Raise --time-limit to avoid it.", file=sys.stderr)
    if result.stats.generate_seconds:
        print(f"Storing answers took {100 * result.stats.store_overhead:.1f}% of generation time.", file=sys.stderr)
    if judge is not None:
        from auditdesk.cli.judge import judge_with_progress

        if judge_with_progress(store, result.run_id, judge, quiet=quiet) is None:
            return 130
    if out is not None:
        write_outputs(store, result.run_id, out, quiet=quiet)
    status = 0
    if fail_on or junit:
        from auditdesk.cli.ci import ci_gate

        status = ci_gate(stored_findings(store, result.run_id, quiet=quiet), fail_on=fail_on, junit=junit,
                         seconds=time.monotonic() - started)
    print(result.run_id)
    return status


def stored_findings(store, run_id: int, *, quiet: bool = False) -> dict:  # noqa: ANN001
    """The run's latest findings, analysing it first (with a progress bar) when it never was."""
    from auditdesk.core.audit_job import analyse_run

    latest = store.latest_analysis(run_id)
    if latest is not None:
        return latest["findings"]
    with ProgressBar(quiet=quiet) as reporter:
        return analyse_run(store, run_id, reporter=reporter)


def write_outputs(store, run_id: int, out: Path, *, quiet: bool = False) -> None:  # noqa: ANN001
    """Analyse the run and write the findings JSON, the PDF report and the answers CSV into `out`."""
    from auditdesk.core.audit_job import write_outputs as write_documents

    with ProgressBar(quiet=quiet) as reporter:
        outputs = write_documents(store, run_id, out, reporter=reporter)
    for label, path in (("Findings", outputs.findings), ("Report", outputs.pdf), ("Answers", outputs.csv)):
        if path is not None and Path(path).exists():
            print(f"{label}: {path}", file=sys.stderr)
    for note in outputs.notes:
        print(f"Note: {note}", file=sys.stderr)
