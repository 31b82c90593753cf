"""CSV (one row per answer) and JSON (the findings file) exports, each written atomically.

The CSV carries the answer text exactly as stored; a spreadsheet must not run it,
so cells that a spreadsheet would read as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable

from auditdesk.core.progress import CancelToken
from auditdesk.core.report.atomic import atomic_path

CSV_COLUMNS = ["run", "model_role", "pack", "probe", "category", "variant", "sample", "seed", "prompt", "answer"]
_FIELD_FOR = {
    "run": "run_id",
    "model_role": "role",
    "pack": "pack_id",
    "probe": "probe_id",
    "category": "category",
    "variant": "variant",
    "sample": "sample",
    "seed": "seed",
    "prompt": "prompt",
    "answer": "text",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# The store's column names, accepted beside the plain-data names above.
_ALIASES = {"answer": "answer", "sample": "sample_index", "prompt": "prompt"}


def _value(answer: dict, column: str):
    value = answer.get(_FIELD_FOR[column])
    if value is None and column in _ALIASES:
        value = answer.get(_ALIASES[column])
    return value


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # CSV injection: a cell starting like a formula would be evaluated by Excel/LibreOffice.
    if text.startswith(_FORMULA_START) and not text.startswith("- ") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_csv(answers: Iterable[dict], path: Path | str, *, cancel: CancelToken | None = None) -> int:
    """Write one CSV row per answer (run, model role, probe, category, variant, sample, seed, text); returns the row count."""
    rows = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
            writer.writerow(CSV_COLUMNS)
            for answer in answers:
                if cancel is not None and rows % 1000 == 0:
                    cancel.raise_if_cancelled()
                writer.writerow([_cell(_value(answer, c)) for c in CSV_COLUMNS])
                rows += 1
    return rows


def write_json(findings: dict, path: Path | str) -> None:
    """Write the findings document as pretty, UTF-8 JSON (atomically)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(_finite(findings), fh, ensure_ascii=False, indent=2, allow_nan=False, default=str)
            fh.write("\n")


def _finite(value):
    """NaN and infinities are not JSON; they become null ("not measured")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
