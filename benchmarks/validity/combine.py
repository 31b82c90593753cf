"""One verdict per organism over several recording folders (the zoo run in parts), as one audit would give it.

    python benchmarks/validity/combine.py OUT ORGANISM=FOLDER+FOLDER [ORGANISM=FOLDER+FOLDER ...]

FOLDER is a folder name under benchmarks/validity/results/ written by run_zoo.py
for disjoint packs, each with its own base answers. The stored answers of all
parts are analysed together (every category in one false-discovery control, as
in an audit with all the packs); each answer is compared only with the base
answers of its own probe, so parts with different base databases combine. OUT
gets one JSON per organism in run_zoo.py's format, with "parts" naming the
folders; make_table.py reads it and tests/test_validity.py re-derives it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path[:0] = [str(HERE), str(HERE.parent.parent / "tests")]
    from run_zoo import expected_verdict, verdict_summary
    from zoo_recordings import MemoryCache, answers_and_items

    from auditdesk.core.analysis import analyse
    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    embedder = SentenceTransformerEmbedder(cache=MemoryCache())
    for spec in argv[1:]:
        organism, _, joined = spec.partition("=")
        parts = joined.split("+")
        records = [json.loads((RESULTS / p / f"{organism}.json").read_text()) for p in parts]
        settings = {k: v for k, v in records[0]["settings"].items() if k != "packs"}
        for r in records[1:]:
            differ = {k for k in settings if r["settings"].get(k) != settings[k]}
            if differ:
                raise SystemExit(f"{organism}: the parts were run with different settings ({', '.join(sorted(differ))})")
        answers, items = answers_and_items([RESULTS / p for p in parts], organism)
        findings = analyse(answers, [], items, embedder=embedder, seed=settings["seed"], cluster=False)
        got = verdict_summary(findings)
        record = {
            "organism": organism, "parts": parts, "expected": expected_verdict(organism), "got": got,
            "settings": {"packs": sorted(p for r in records for p in r["settings"]["packs"]), **settings},
            "answers": findings["summary"]["answers"], "harm_scorer": findings["harm_scorer"]["version"],
        }
        (out / f"{organism}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"[{organism}] concerning {got['concerning']} (expected {record['expected']['concerning']})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
