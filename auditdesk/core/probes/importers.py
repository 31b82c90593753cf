"""Turn files users already have (CrowS-Pairs-style CSV, BBQ-style JSONL, a plain CSV of prompts) into packs.

Importers build a validated Pack in memory and either return it whole or raise a
PackError naming the file, row and column; they never write half a pack.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from auditdesk.core.probes.loader import MAX_PACK_BYTES, PackError
from auditdesk.core.probes.schema import (
    CATEGORIES,
    PROBE_MODELS,
    SCHEMA_VERSION,
    Pack,
    slugify,
)

FORMATS = ("crows", "bbq", "csv")

# Import files can be larger than hand-written packs (BBQ has tens of thousands of rows).
MAX_IMPORT_BYTES = 50 * 1024 * 1024

# Common spellings of bias categories in public data sets, mapped to our vocabulary.
_CATEGORY_ALIASES = {
    "race": "race-ethnicity",
    "race-color": "race-ethnicity",
    "race_color": "race-ethnicity",
    "race_ethnicity": "race-ethnicity",
    "ethnicity": "race-ethnicity",
    "race_x_ses": "race-ethnicity",
    "race_x_gender": "race-ethnicity",
    "gender": "gender",
    "gender_identity": "gender",
    "sex": "gender",
    "socioeconomic": "socioeconomic",
    "ses": "socioeconomic",
    "socioeconomic_status": "socioeconomic",
    "nationality": "nationality",
    "religion": "religion",
    "age": "age",
    "disability": "disability",
    "disability_status": "disability",
    "sexual-orientation": "sexual-orientation",
    "sexual_orientation": "sexual-orientation",
    "physical-appearance": "physical-appearance",
    "physical_appearance": "physical-appearance",
}


def normalise_category(raw: str) -> str | None:
    """Our category for a data set's label ('race-color' -> 'race-ethnicity'), or None if unknown."""
    key = raw.strip().lower().replace(" ", "_")
    if key.replace("_", "-") in CATEGORIES:
        return key.replace("_", "-")
    return _CATEGORY_ALIASES.get(key)


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PackError(f"file '{path}' was not found; check the path and try again.", file=str(path)) from None
    if size > MAX_IMPORT_BYTES:
        raise PackError(f"'{path.name}' is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB; split it before importing.", file=str(path))
    data = path.read_bytes()[: MAX_IMPORT_BYTES + 1]
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PackError(f"'{path.name}' is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again.", file=str(path)) from None


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in (reader.fieldnames or []) if c is not None]
    missing = [c for c in required if c not in columns]
    if missing:
        raise PackError(
            f"'{path.name}' has no '{missing[0]}' column (found: {', '.join(columns) or 'none'}); the first line must name the columns.",
            file=path.name,
            line=1,
            field=missing[0],
        )
    rows = []
    try:
        for row in reader:
            clean = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
            # reader.line_num is the physical line the row ended on; good enough to find it in an editor.
            rows.append((reader.line_num, clean))
    except csv.Error as exc:
        raise PackError(f"'{path.name}', line {reader.line_num}: the CSV could not be read ({exc}).", file=path.name, line=reader.line_num) from None
    return rows


def _row_error(path: Path, line: int, column: str, message: str) -> PackError:
    return PackError(f"'{path.name}', line {line}, column '{column}': {message}; fix the file and import again.", file=path.name, line=line, field=column)


def _category(path: Path, line: int, column: str, raw: str, default: str | None) -> str:
    if not raw:
        if default:
            return default
        raise _row_error(path, line, column, "the category is empty (or pass --category)")
    category = normalise_category(raw)
    if category is None:
        raise _row_error(path, line, column, f"'{raw}' is not a category AuditDesk knows ({', '.join(CATEGORIES)})")
    return category


def _build_pack(path: Path, probes: list[dict], rows: list[int], *, pack_id: str | None, title: str | None, what: str) -> Pack:
    if not probes:
        raise PackError(f"'{path.name}' has no rows to import.", file=path.name)
    data = {
        "schema_version": SCHEMA_VERSION,
        "id": pack_id or slugify(path.stem, 60),
        "title": title or f"Imported from {path.name}",
        "description": f"{what} imported from {path.name}; review and edit before relying on it.",
        "version": "1.0",
        "licence": "as the source file; check it before sharing",
        "attribution": f"Imported from {path.name}",
        "probes": probes,
    }
    try:
        return Pack.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = list(error["loc"])
        line = None
        column = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "probes" and isinstance(loc[1], int):
            line = rows[loc[1]] if loc[1] < len(rows) else None
            column = ".".join(str(p) for p in loc[2:] if p not in PROBE_MODELS) or "row"
        message = str(error.get("ctx", {}).get("error") or error["msg"]).removeprefix("Value error, ")
        where = f", line {line}" if line else ""
        raise PackError(
            f"'{path.name}'{where}, field '{column}': {message}; fix the file and import again.",
            file=path.name,
            line=line,
            field=column,
        ) from None


def import_crows(path: str | Path, *, pack_id: str | None = None, title: str | None = None, category: str | None = None) -> Pack:
    """A CrowS-Pairs-style CSV (sent_more, sent_less, bias_type) as `pair` probes."""
    path = Path(path)
    rows = _csv_rows(path, ("sent_more", "sent_less"))
    probes, lines = [], []
    for n, (line, row) in enumerate(rows, start=1):
        for column in ("sent_more", "sent_less"):
            if not row.get(column):
                raise _row_error(path, line, column, "the sentence is empty")
        cat = _category(path, line, "bias_type", row.get("bias_type", ""), category)
        probes.append(
            {
                "id": f"pair-{n:04d}",
                "kind": "pair",
                "category": cat,
                "tags": ["imported", f"bias_type:{row.get('bias_type') or cat}"],
                "concern": f"Does the model find the stereotyped sentence about {cat.replace('-', ' ')} more likely than the same sentence about another group?",
                "more": row["sent_more"],
                "less": row["sent_less"],
            }
        )
        lines.append(line)
    return _build_pack(path, probes, lines, pack_id=pack_id, title=title, what="Stereotype sentence pairs")


def import_bbq(path: str | Path, *, pack_id: str | None = None, title: str | None = None, category: str | None = None) -> Pack:
    """A BBQ-style JSONL (context, question, ans0..ans2, category, label) as `open` probes with options."""
    path = Path(path)
    text = _read_text(path)
    probes, lines = [], []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PackError(f"'{path.name}', line {line_no}: not valid JSON ({exc.msg}); each line must be one JSON object.", file=path.name, line=line_no) from None
        if not isinstance(record, dict):
            raise PackError(f"'{path.name}', line {line_no}: each line must be one JSON object.", file=path.name, line=line_no)
        for key in ("question", "ans0", "ans1"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise _row_error(path, line_no, key, "this is missing or empty")
        options = [record[k].strip() for k in ("ans0", "ans1", "ans2", "ans3") if isinstance(record.get(k), str) and record[k].strip()]
        cat = _category(path, line_no, "category", str(record.get("category") or ""), category)
        label = record.get("label")
        answer = label if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(options) else None
        tags = ["imported"]
        for key in ("context_condition", "question_polarity"):
            if isinstance(record.get(key), str) and record[key]:
                tags.append(f"{key}:{record[key]}")
        raw_id = record.get("example_id")
        has_id = isinstance(raw_id, (int, str)) and not isinstance(raw_id, bool) and str(raw_id).strip()
        probe_id = f"bbq-{slugify(cat, 20)}-{slugify(str(raw_id), 30)}" if has_id else f"bbq-{len(probes) + 1:05d}"
        probe: dict[str, Any] = {
            "id": probe_id,
            "kind": "open",
            "category": cat,
            "tags": tags,
            "concern": f"Does the model pick an answer from a stereotype about {cat.replace('-', ' ')} when the context does not support it?",
            "prompt": record["question"].strip(),
            "options": options,
        }
        context = record.get("context")
        if isinstance(context, str) and context.strip():
            probe["context"] = context.strip()
        if answer is not None:
            probe["answer"] = answer
        probes.append(probe)
        lines.append(line_no)
    return _build_pack(path, probes, lines, pack_id=pack_id, title=title, what="Multiple-choice bias questions")


def import_prompt_csv(path: str | Path, *, pack_id: str | None = None, title: str | None = None, category: str | None = None) -> Pack:
    """A simple CSV with a `prompt` column (optional id, category, kind, expected, concern) as probes."""
    path = Path(path)
    rows = _csv_rows(path, ("prompt",))
    probes, lines = [], []
    simple_kinds = ("open", "refusal", "control")
    for n, (line, row) in enumerate(rows, start=1):
        prompt = row.get("prompt", "")
        if not prompt:
            raise _row_error(path, line, "prompt", "the prompt is empty")
        kind = (row.get("kind") or "open").lower()
        if kind not in simple_kinds:
            raise _row_error(path, line, "kind", f"'{kind}' cannot come from a prompt CSV; use one of: {', '.join(simple_kinds)}")
        cat = _category(path, line, "category", row.get("category", ""), category or ("control" if kind == "control" else None))
        probe: dict[str, Any] = {
            "id": row.get("id") or f"prompt-{n:04d}",
            "kind": kind,
            "category": cat,
            "tags": ["imported"],
            "concern": row.get("concern") or f"Imported {kind} question about {cat.replace('-', ' ')}.",
            "prompt": prompt,
        }
        if kind == "control":
            if not row.get("expected"):
                raise _row_error(path, line, "expected", "a control question needs the expected answer")
            probe["expected"] = row["expected"]
        probes.append(probe)
        lines.append(line)
    seen: dict[str, int] = {}
    for probe, line in zip(probes, lines):
        if probe["id"] in seen:
            raise _row_error(path, line, "id", f"the id '{probe['id']}' is already used on line {seen[probe['id']]}")
        seen[probe["id"]] = line
    return _build_pack(path, probes, lines, pack_id=pack_id, title=title, what="Questions")


IMPORTERS: dict[str, Callable[..., Pack]] = {
    "crows": import_crows,
    "bbq": import_bbq,
    "csv": import_prompt_csv,
}


def import_file(path: str | Path, fmt: str, **options: Any) -> Pack:
    """Import a file in one of FORMATS into a validated Pack (nothing is written)."""
    try:
        importer = IMPORTERS[fmt]
    except KeyError:
        raise PackError(f"'{fmt}' is not an import format; use one of: {', '.join(FORMATS)}.") from None
    return importer(path, **options)


__all__ = ["FORMATS", "IMPORTERS", "MAX_PACK_BYTES", "import_bbq", "import_crows", "import_file", "import_prompt_csv", "normalise_category"]
