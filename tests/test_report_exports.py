"""CSV and JSON exports and the text sanitiser: exact round trips, atomic writes, visible hidden characters."""

from __future__ import annotations

import csv
import json

import pytest

from auditdesk.core.progress import CancelToken, Cancelled
from auditdesk.core.report import write_csv, write_json
from auditdesk.core.report.csv_export import CSV_COLUMNS
from auditdesk.core.report.sanitise import GlyphTally, clean_text, to_markup

HOSTILE = 'line one\nline "two", with commas\r\n<b>bold</b> &amp; \u202eevil\x00 😀 中文 مرحبا'


def _answers():
    rows = []
    for role in ("base", "tuned"):
        for sample in range(3):
            rows.append({"run_id": 7, "role": role, "pack_id": "pk", "probe_id": "p1", "category": "gender",
                         "variant": "plain", "sample": sample, "seed": 100 + sample, "prompt": "Q?",
                         "text": HOSTILE if sample == 0 else f"=HYPERLINK(\"http://x\") {role}"})
    return rows


def test_csv_has_one_exact_row_per_answer(tmp_path):
    path = tmp_path / "answers.csv"
    assert write_csv(_answers(), path) == 6
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == 6
    assert rows[0]["answer"] == HOSTILE  # the evidence, byte for byte
    assert rows[0]["model_role"] == "base" and rows[3]["model_role"] == "tuned"
    assert rows[1]["seed"] == "101" and rows[1]["sample"] == "1" and rows[1]["run"] == "7"
    # A spreadsheet must not run an answer as a formula.
    assert rows[1]["answer"].startswith("'=HYPERLINK")
    assert [p.name for p in tmp_path.iterdir()] == ["answers.csv"]


def test_csv_accepts_store_column_names(tmp_path):
    row = {"run_id": 1, "role": "base", "pack_id": "pk", "probe_id": "p", "category": "c", "variant": "v",
           "sample_index": 4, "seed": 9, "prompt": "q", "answer": "stored text"}
    write_csv([row], tmp_path / "a.csv")
    got = list(csv.DictReader(open(tmp_path / "a.csv", encoding="utf-8")))[0]
    assert got["answer"] == "stored text" and got["sample"] == "4"


def test_cancelled_csv_leaves_no_file(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        write_csv(_answers(), tmp_path / "a.csv", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_json_round_trip_with_nan_as_null(tmp_path):
    findings = {"format": "auditdesk.findings", "version": 1, "x": float("nan"), "t": HOSTILE, "l": [float("inf"), 1.5]}
    path = tmp_path / "f.json"
    write_json(findings, path)
    back = json.loads(path.read_text(encoding="utf-8"))
    assert back["x"] is None and back["l"] == [None, 1.5] and back["t"] == HOSTILE


def test_json_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(TypeError):
        _bad(path)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def _bad(path):
    class Boom:
        def __str__(self):
            raise TypeError("cannot serialise")

    write_json({"k": Boom()}, path)


def test_clean_text_makes_hidden_characters_visible():
    tally = GlyphTally()
    text, cut = clean_text("a\u202eb\u200bc\x1bd\te\u2028f", tally=tally)
    assert text == "a[U+202E]b[U+200B]c[U+001B]d e\nf"
    assert cut == 0 and tally.hidden_total == 3


def test_markup_escapes_and_caps():
    from auditdesk.core.report.fonts import register_fonts

    fonts = register_fonts()
    tally = GlyphTally()
    markup = to_markup('<img src="/etc/passwd"/> & 中 🔥' + "x" * 50, fonts, tally, limit=30)
    assert "<img" not in markup and "&lt;img src=&quot;/etc/passwd&quot;/&gt; &amp;" in markup
    assert '<font name="AuditDesk-CJK">中</font>' in markup
    assert "[U+1F525]" in markup and tally.missing[0x1F525] == 1
    assert "more characters not shown" in markup and tally.truncated == 1


def test_exports_get_ordinary_file_permissions(tmp_path):
    """mkstemp makes private files; an exported report must be readable like any other new file."""
    import os
    import stat

    from auditdesk.core.report.atomic import atomic_path

    target = tmp_path / "report.csv"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("run,role\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
