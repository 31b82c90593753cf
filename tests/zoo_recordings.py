"""Read the validity zoo's recordings (benchmarks/validity/results/FOLDER): stored answers and probe items.

The one reader of the recordings: tests/test_validity.py, tests/test_drift.py and
benchmarks/validity/combine.py use it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from auditdesk.core.probes.items import ProbeItem

ZOO = Path(__file__).resolve().parent.parent / "benchmarks" / "validity" / "results"


class MemoryCache:
    """Embeddings kept in memory for one process: every organism of a folder shares its base answers."""

    def __init__(self):
        self.vectors = {}

    def get_many(self, hashes, model):
        return {h: self.vectors[model, h] for h in hashes if (model, h) in self.vectors}

    def put_many(self, rows, model):
        self.vectors.update(((model, h), v) for h, v in rows)


def rows(path: Path) -> list[dict]:
    """One dict per line of a gzipped JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def items(folder: Path) -> list[ProbeItem]:
    """The probe items a recording folder's audits asked."""
    out = []
    for row in rows(folder / "items.jsonl.gz"):
        row["tags"] = tuple(row.get("tags") or ())
        out.append(ProbeItem(**row))
    return out


def answers_and_items(parts: list[Path], organism: str) -> tuple[list, list[ProbeItem]]:
    """Base and tuned answers (AnswerRecord) and probe items of one organism over one or more recording folders."""
    from auditdesk.core.analysis import AnswerRecord

    answers, probe_items = [], []
    for folder in parts:
        probe_items += items(folder)
        answers += [AnswerRecord(**r) for r in rows(folder / "base.jsonl.gz")]
        answers += [AnswerRecord(**r) for r in rows(folder / f"{organism}.tuned.jsonl.gz")]
    return answers, probe_items


def recorded() -> list[tuple[str, str]]:
    """(folder, organism) for every recorded verdict: run_zoo.py's own, and combine.py's over several folders.

    A folder's own verdict for an organism is left out where a combined verdict uses that
    folder as one of its parts: the parts' answers are checked through the whole.
    """
    found = sorted((p.parent.name, p.stem) for p in ZOO.glob("*/*.json"))
    parts = {(part, organism) for folder, organism in found
             for part in json.loads((ZOO / folder / f"{organism}.json").read_text()).get("parts") or []}
    return [key for key in found if key not in parts]


def parts_of(folder: str, record: dict, root: Path = ZOO) -> list[Path]:
    """The recording folders (under `root`) whose answers a verdict was derived from."""
    return [root / p for p in record.get("parts") or [folder]]
