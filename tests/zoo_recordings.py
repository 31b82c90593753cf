"""Read the validity zoo's recordings (benchmarks/validity/results/FOLDER): stored answers and probe items."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from auditdesk.core.probes.items import ProbeItem

ZOO = Path(__file__).resolve().parent.parent / "benchmarks" / "validity" / "results"


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
