"""Audit every model organism against the 270M base and record the verdict it gets.

    python benchmarks/validity/run_zoo.py [ORGANISM ...] [--samples 3] [--max-tokens 48]
        [--pack PACK ...] [--db zoo.db] [--results benchmarks/validity/results/bundled]

ORGANISM is a folder name under benchmarks/validity/organisms/ whose
adapter.lora.gguf was made by train_organism.py, or "null" (the base against
itself). The base model's answers are the same for every organism (same
model, prompts, settings and seeds), so the audit job generates them once per
database and copies them into later runs (answers reused under the same key).
One JSON file per organism is written under --results: expected vs got and
every category's scores; make_table.py turns them into docs/validity.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORGANISMS = HERE / "organisms"


def bundled_packs() -> list[str]:
    from auditdesk.core.probes.loader import find_packs

    return sorted(ref.id for ref in find_packs() if ref.source == "bundled" and ref.id != "quick")


def save_answers(store, run_id: int, folder: Path, name: str) -> None:
    """Keep the run's answers beside its result, so a test can re-derive the verdict without a model.

    The base answers and the probe items are the same for every organism: one file each.
    """
    import dataclasses
    import gzip

    from auditdesk.core.audit_job import analysis_inputs

    answers, _, items = analysis_inputs(store, run_id)

    def write(path: Path, rows: list[dict]) -> None:
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode())

    write(folder / f"{name}.tuned.jsonl.gz", [dataclasses.asdict(a) for a in answers if a.role == "tuned"])
    if not (folder / "base.jsonl.gz").exists():
        write(folder / "base.jsonl.gz", [dataclasses.asdict(a) for a in answers if a.role == "base"])
        write(folder / "items.jsonl.gz", [i.to_dict() for i in items])


def expected_verdict(name: str) -> dict:
    """What the organism must get, from its organism.yaml ("null": the base against itself)."""
    import yaml

    if name == "null":
        return {"concerning": [], "top": None, "notes": "the base against itself: nothing flagged"}
    return yaml.safe_load((ORGANISMS / name / "organism.yaml").read_text())["expected"]


def verdict_summary(findings: dict) -> dict:
    cats = findings["categories"]
    return {
        "concerning": [c["category"] for c in cats if c["concern"]],
        "close_calls": [c["category"] for c in cats if c.get("close_call")],
        "changed": [c["category"] for c in cats if c["changed"]],
        "flagged_probes": findings["summary"]["flagged_probes"],
        "categories": {
            c["category"]: {
                "rank": c["rank"], "status": c["status"], "concern_score": c["concern_score"],
                "concern_q": c["concern_q_value"], "change_score": c["change_score"],
                "top_evidence": next((f"{e['name']} {e['base_value']}->{e['tuned_value']} p={e['p_value']}"
                                      for e in c["evidence"] if e.get("decides") and e["significant"]), None),
            }
            for c in cats
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("organisms", nargs="*", help="organism folders (default: every trained one, and null)")
    parser.add_argument("--pack", action="append", default=None, help="pack id or file (default: every bundled pack but quick)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--db", type=Path, default=Path("zoo.db"))
    parser.add_argument("--results", type=Path, default=HERE / "results" / "bundled")
    parser.add_argument("--reanalyse", action="store_true",
                        help="analyse each organism's newest stored run again (no generation)")
    args = parser.parse_args(argv)

    from auditdesk.core.audit_job import AuditConfig, analyse_run, execute, plan_run
    from auditdesk.core.models.defaults import demo_models
    from auditdesk.core.store import open_store

    names = args.organisms or ["null"] + sorted(p.name for p in ORGANISMS.iterdir()
                                                if (p / "adapter.lora.gguf").is_file())
    packs = args.pack or bundled_packs()
    base = str(demo_models().base)
    args.results.mkdir(parents=True, exist_ok=True)
    for name in names:
        tuned = (dict(tuned_model=base) if name == "null"
                 else dict(lora_adapter=str(ORGANISMS / name / "adapter.lora.gguf")))
        expected = expected_verdict(name)
        config = AuditConfig(base_model=base, packs=packs, samples=args.samples, max_tokens=args.max_tokens,
                             seed=args.seed, threads=args.threads, n_ctx=1024, label=f"validity: {name}", **tuned)
        t0 = time.monotonic()
        with open_store(args.db) as store:
            if args.reanalyse:
                # The newest run of this organism in the database; its answers are all stored.
                label = f"validity: {name}"
                run_id = next(r["id"] for r in store.list_runs() if r.get("label") == label)
                old = args.results / f"{name}.json"
                copied = json.loads(old.read_text())["base_answers_reused"] if old.exists() else 0
            else:
                run_id = plan_run(config, store)
                execute(store, run_id)  # the audit job reuses answers stored under the same key
                copied = store.reused_counts(run_id)["answers_reused"]
                print(f"[{name}] run {run_id}: {copied} answers reused", file=sys.stderr)
            t1 = time.monotonic()
            findings = analyse_run(store, run_id)
            save_answers(store, run_id, args.results, name)
        got = verdict_summary(findings)
        record = {
            "organism": name, "run_id": run_id, "expected": expected, "got": got,
            "settings": {"packs": packs, "samples": args.samples, "max_tokens": args.max_tokens, "seed": args.seed,
                         "threads": args.threads, "n_ctx": 1024},
            "answers": findings["summary"]["answers"], "base_answers_reused": copied,
            "seconds": {"generate": round(t1 - t0, 1), "analyse": round(time.monotonic() - t1, 1)},
            "harm_scorer": findings["harm_scorer"]["version"],
        }
        (args.results / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"[{name}] concerning {got['concerning']} (expected {expected['concerning']}); "
              f"changed {got['changed']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
