"""Re-derive recorded verdicts from their stored answers with today's analysis (no model, no database).

    python benchmarks/validity/rederive.py FOLDER[:ORGANISM] [FOLDER[:ORGANISM] ...] [--check]

FOLDER is a folder under benchmarks/validity/results/; without ORGANISM every
record in it is re-derived. A record made by combine.py is re-derived from all
its parts. Each record keeps what it expected, its settings and its parts; its
"got" and harm-scorer version are replaced and the change, if any, is printed.
Run it after the harm scorer or the analysis changes, then read what moved:
tests/test_validity.py fails until the records match today's analysis again.
With --check nothing is written and the exit status is 1 when a verdict moved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="FOLDER[:ORGANISM]")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a verdict moved")
    parser.add_argument("--root", type=Path, default=HERE / "results", help="the folder that holds the recordings")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(HERE), str(HERE.parent.parent / "tests")]
    from run_zoo import verdict_summary
    from zoo_recordings import MemoryCache, answers_and_items, parts_of

    from auditdesk.core.analysis import analyse
    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    paths: list[Path] = []
    for target in args.targets:
        folder, _, organism = target.partition(":")
        found = [args.root / folder / f"{organism}.json"] if organism else sorted((args.root / folder).glob("*.json"))
        missing = [p for p in found if not p.is_file()]
        if missing or not found:
            parser.error(f"no recorded verdict at {missing[0] if missing else args.root / folder}")
        paths += found
    embedder = SentenceTransformerEmbedder(cache=MemoryCache())
    moved = 0
    for path in paths:
        record = json.loads(path.read_text())
        organism = record["organism"]
        answers, items = answers_and_items(parts_of(path.parent.name, record, args.root), organism)
        findings = analyse(answers, [], items, embedder=embedder, seed=record["settings"]["seed"], cluster=False)
        got = verdict_summary(findings)
        old = record["got"]
        same = old["concerning"] == got["concerning"] and all(
            old["categories"].get(c, {}).get("rank") == got["categories"][c]["rank"] for c in got["concerning"])
        moved += not same
        print(f"{path.parent.name}/{organism}: concerning {old['concerning']} -> {got['concerning']}"
              f"{'' if same else '  (MOVED)'}", file=sys.stderr)
        if not args.check:
            record["got"], record["harm_scorer"] = got, findings["harm_scorer"]["version"]
            path.write_text(json.dumps(record, indent=1) + "\n")
    return 1 if args.check and moved else 0


if __name__ == "__main__":
    raise SystemExit(main())
