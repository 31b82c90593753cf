"""`auditdesk runs list|show|resume|delete` and `auditdesk compare`: manage stored audit runs.

Reads go through the store; the only writes are resume (through the runner) and
delete. A database from a newer AuditDesk is listed read-only with a notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="list, show, resume or delete stored audit runs",
                                 description="Manage the audit runs stored in the database.")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    listing = runs_sub.add_parser("list", help="every run, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _db_option(listing)
    listing.set_defaults(func=list_command)

    show = runs_sub.add_parser("show", help="one run's status, settings and progress")
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    _db_option(show)
    show.set_defaults(func=show_command)

    resume = runs_sub.add_parser("resume", help="continue an interrupted or cancelled run")
    resume.add_argument("run_id", type=int, metavar="ID")
    resume.add_argument("--out", type=Path, default=None, help="folder for the analysis JSON and the PDF report")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_option(resume)
    resume.set_defaults(func=resume_command)

    delete = runs_sub.add_parser("delete", help="delete a run with all its answers and analyses")
    delete.add_argument("run_id", type=int, metavar="ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _db_option(delete)
    delete.set_defaults(func=delete_command)

    compare = subparsers.add_parser(
        "compare", help="did the tuned model drift between two audits (statistics, not text equality)",
        description="Compare the tuned answers of two runs (e.g. vendor version 1 and version 2) with the "
                    "audit's tests: run A's tuned answers take the base model's place, run B's the tuned model's.",
    )
    compare.add_argument("run_a", type=int, metavar="RUN_A")
    compare.add_argument("run_b", type=int, metavar="RUN_B")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.add_argument("--texts", action="store_true", help="only which answer texts differ, probe by probe")
    compare.add_argument("--fdr", type=float, default=0.05, help="false discovery rate (default 0.05)")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_option(compare)
    compare.set_defaults(func=compare_command)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")


def _open(args, *, read_only: bool):
    from auditdesk.core.store import open_store

    store = open_store(args.db, read_only=read_only and _exists(args.db))
    if store.read_only and store.read_only_reason and "newer" in store.read_only_reason:
        print(f"auditdesk: note: {store.read_only_reason}", file=sys.stderr)
    return store


def _exists(db: Path | None) -> bool:
    from auditdesk.core.paths import default_db_path

    return Path(db or default_db_path()).exists()


def list_command(args) -> int:
    with _open(args, read_only=True) as store:
        runs = store.list_runs()
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print("No audit runs yet; start one with `auditdesk audit`.")
        return 0
    print(f"{'ID':>4}  {'STATUS':<10} {'DONE':>11}  {'CREATED':<20} {'SETTINGS':<12} LABEL / MODELS")
    for run in runs:
        tuned = run["tuned_model"] or run["lora_adapter"] or ""
        name = run["label"] or f"{Path(run['base_model']).name} vs {Path(tuned).name}"
        print(f"{run['id']:>4}  {run['status']:<10} {run['units_done']:>5}/{run['units_planned']:<5}  "
              f"{run['created'][:19]:<20} {run['settings_fingerprint'][:12] or '-':<12} {name}")
    return 0


def show_command(args) -> int:
    with _open(args, read_only=True) as store:
        summary = store.run_summary(args.run_id)
        run = store.get_run(args.run_id)
    if args.json:
        print(json.dumps({**summary, "config": run["config"], "sampling": run["sampling"],
                          "prompt_format": run["prompt_format"], "tool_version": run["tool_version"],
                          "llama_cpp_version": run["llama_cpp_version"], "host": run.get("host"),
                          "engine_info": run.get("engine_info")}, indent=2))
        return 0
    for key in ("id", "label", "status", "created", "started", "ended", "base_model", "tuned_model",
                "lora_adapter", "packs", "samples", "seed", "units_planned", "units_done",
                "units_failed", "units_pending", "answers_reused", "likelihoods_reused",
                "settings_fingerprint", "last_error"):
        value = summary[key]
        if value not in (None, "", []):
            print(f"{key.replace('_', ' '):>20}: {value}")
    if summary["status"] not in ("completed",) and summary["units_pending"]:
        print(f"\nContinue it with: auditdesk runs resume {summary['id']}")
    return 0


def resume_command(args) -> int:
    from auditdesk.cli.audit import run_with_progress

    with _open(args, read_only=False) as store:
        store.require_writable()
        return run_with_progress(store, run_id=args.run_id, out=args.out, quiet=args.quiet)


def delete_command(args) -> int:
    from auditdesk.core.errors import AuditDeskError
    from auditdesk.core.audit_job import delete_run

    with _open(args, read_only=False) as store:
        store.require_writable()
        summary = store.run_summary(args.run_id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise AuditDeskError(
                    f"Deleting run {args.run_id} cannot be undone; add --yes to delete it without being asked."
                )
            label = f" ({summary['label']})" if summary.get("label") else ""
            reply = input(f"Delete audit run {args.run_id}{label}, {summary['status']}, with its "
                          f"{summary['units_done']} answers and all analyses? This cannot be undone. [y/N] ")
            if reply.strip().lower() not in ("y", "yes"):
                print("Nothing was deleted.")
                return 1
        delete_run(store, args.run_id)
    print(f"Deleted audit run {args.run_id}.")
    return 0


def compare_command(args) -> int:
    if not args.texts:
        return drift_command(args)
    return text_compare_command(args)


def drift_command(args) -> int:
    from auditdesk.cli.progress import ProgressBar
    from auditdesk.core.monitoring.drift import compare_tuned

    with _open(args, read_only=False) as store, ProgressBar(quiet=args.quiet or args.json) as reporter:
        findings = compare_tuned(store, args.run_a, args.run_b, fdr=args.fdr, reporter=reporter)
    if args.json:
        print(json.dumps(findings, indent=2))
        return 0
    print_drift(findings)
    return 0


def print_drift(findings: dict) -> None:
    """The drift between two runs as a table, one line per category."""
    from auditdesk.core.monitoring.drift import drift_lines

    print("\n".join(drift_lines(findings)))


def text_compare_command(args) -> int:
    from auditdesk.core.runner.compare import compare_runs

    with _open(args, read_only=True) as store:
        result = compare_runs(store, args.run_a, args.run_b)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Run {args.run_a} -> run {args.run_b}")
    for role, m in result["models"].items():
        state = "same file" if m["same"] else "CHANGED"
        print(f"  {role} model: {state} ({(m['a'] or '-')[:12]} -> {(m['b'] or '-')[:12]})")
    if result["fingerprint_differences"]:
        print("  Warning: the settings fingerprints differ in more than the tuned model ("
              + ", ".join(result["fingerprint_differences"]) + "), so differences may not come from the tuned model.")
    if result["settings_differ"]:
        print("  Settings differ, so answers are not directly comparable: "
              + ", ".join(f"{k} {a}->{b}" for k, (a, b) in result["settings_differ"].items()))
    print(f"\n{'CATEGORY':<20} {'PROBES':>7} {'CHANGED':>8} {'ANSWERS CHANGED':>16}")
    for name, cat in result["categories"].items():
        share = 100 * cat["changed"] / cat["samples"] if cat["samples"] else 0.0
        print(f"{name:<20} {cat['probes']:>7} {cat['probes_changed']:>8} {share:>15.0f}%")
    drifted = sorted((p for p in result["probes"] if p["role"] == "tuned" and p["changed"]),
                     key=lambda p: -p["changed"] / max(1, p["samples"]))
    if drifted:
        print("\nTuned-model answers that changed most:")
        for p in drifted[:15]:
            print(f"  {p['probe']}: {p['changed']}/{p['samples']} answers changed")
    else:
        print("\nNo tuned-model answer changed on the shared probes.")
    if result["probes_only_in_a"] or result["probes_only_in_b"]:
        print(f"\nProbes in only one run: {len(result['probes_only_in_a'])} in run {args.run_a}, "
              f"{len(result['probes_only_in_b'])} in run {args.run_b}.")
    return 0
