"""Second audit against the same base: how much faster when the base answers are reused, in one run.

    python benchmarks/reuse.py [--pack quick] [--samples 2] [--max-tokens 32] [--threads N] [--analyse]

Audits the demo pair (Gemma 3 270M base + the bundled hardware-store adapter at
scale 1), then "another tune" of the same base (the same adapter at scale 0.5: a
different tuned model, same base, packs and settings) in the same fresh database.
Prints both wall times (plan + generation; with --analyse the analysis too), their
ratio (target: second / first <= 0.55) and how many answers the second audit reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_audit(store, config, *, analyse: bool) -> tuple[int, float, dict]:
    """One audit through the job API; its id, wall time in seconds and where the time went."""
    from auditdesk.core.audit_job import run_job

    started = time.monotonic()
    result = run_job(store, config=config, analyse=analyse)
    wall = time.monotonic() - started
    tokens = {row["role"]: row["n"] for row in store.query(
        "SELECT role, sum(completion_tokens) AS n FROM answers WHERE run_id = ? AND reused_from IS NULL "
        "GROUP BY role", (result.run_id,))}
    return result.run_id, wall, {"generate_seconds": round(result.stats.generate_seconds, 1),
                                 "load_seconds": round(result.stats.load_seconds, 1),
                                 "tokens_generated": tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", action="append", default=None)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="longest time for one answer (default 600 s: on a busy machine the audit's 60 s "
                             "cuts answers by time, and an answer cut by time is never reused)")
    parser.add_argument("--db", type=Path, default=None, help="keep the database here (default: a temporary one)")
    parser.add_argument("--analyse", action="store_true", help="include the analysis in the timed audit")
    args = parser.parse_args(argv)

    from auditdesk.core.audit_job import demo_config
    from auditdesk.core.models.defaults import demo_models
    from auditdesk.core.store import open_store

    models = demo_models()
    common = dict(base_model=str(models.base), lora_adapter=str(models.adapter), packs=args.pack or ["quick"],
                  samples=args.samples, max_tokens=args.max_tokens, threads=args.threads, time_limit_s=args.time_limit)
    with tempfile.TemporaryDirectory() as tmp, open_store(args.db or Path(tmp) / "reuse.db") as store:
        first, first_s, first_detail = timed_audit(store, demo_config(**common, label="first tune"),
                                                   analyse=args.analyse)
        second, second_s, second_detail = timed_audit(
            store, demo_config(**common, lora_scale=0.5, label="another tune"), analyse=args.analyse)
        reused = store.reused_counts(second)
        finish = {row["finish_reason"]: row["n"] for row in store.query(
            "SELECT finish_reason, count(*) AS n FROM answers WHERE run_id = ? AND role = 'base' "
            "GROUP BY finish_reason", (first,))}
        planned = store.run_summary(second)["units_planned"]
    result = {
        "packs": common["packs"], "samples": args.samples, "max_tokens": args.max_tokens,
        "analysis_timed": args.analyse, "units_planned": planned,
        "first_seconds": round(first_s, 1), "second_seconds": round(second_s, 1),
        "ratio": round(second_s / first_s, 3), "target": 0.55,
        "first": first_detail, "second": second_detail,
        "second_reused": reused, "first_base_finish_reasons": finish, "time_limit_s": args.time_limit,
    }
    print(json.dumps(result, indent=1))
    return 0 if result["ratio"] <= 0.55 else 1


if __name__ == "__main__":
    raise SystemExit(main())
