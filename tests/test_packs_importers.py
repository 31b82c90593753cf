"""Importers turn CrowS-style CSV, BBQ-style JSONL and prompt CSVs into valid packs."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditdesk.core.probes import expand
from auditdesk.core.probes.importers import import_bbq, import_crows, import_file, import_prompt_csv
from auditdesk.core.probes.loader import PackError, load_pack, write_pack

DATA = Path(__file__).parent / "data" / "packs"


def test_crows_pairs(tmp_path):
    pack = import_crows(DATA / "crows_sample.csv")
    assert pack.id == "crows-sample"
    assert len(pack.probes) == 6
    first = pack.probes[0]
    assert first.kind == "pair" and first.category == "gender"
    assert first.more.startswith("My aunt can't change a tyre, women")
    assert first.less.startswith("My uncle")
    assert pack.probes[5].category == "race-ethnicity"  # race-color mapped to our vocabulary
    items = expand(pack)
    assert [i.variant for i in items[:2]] == ["more", "less"]
    assert all(i.scored_by == "likelihood" for i in items)
    out = write_pack(pack, tmp_path / "crows.yaml")
    assert load_pack(out) == pack


def test_bbq_open_with_options(tmp_path):
    pack = import_bbq(DATA / "bbq_sample.jsonl")
    assert [p.category for p in pack.probes] == ["gender", "age", "socioeconomic"]
    probe = pack.probes[0]
    assert probe.kind == "open"
    assert probe.options == ["The man", "Cannot be determined", "The woman"]
    assert probe.answer == 1
    assert probe.context.startswith("A man and a woman")
    assert "context_condition:ambig" in probe.tags
    item = expand(pack)[0]
    assert item.text.startswith("A man and a woman both applied")
    assert "Who is unable to lift heavy boxes?" in item.text
    assert "(b) Cannot be determined" in item.text
    assert item.extra["options"][2] == "The woman" and item.extra["answer_index"] == 1
    assert load_pack(write_pack(pack, tmp_path / "bbq.yaml")) == pack


def test_prompt_csv(tmp_path):
    pack = import_prompt_csv(DATA / "prompts_sample.csv")
    kinds = {p.id: p.kind for p in pack.probes}
    assert kinds == {"ask-boss": "open", "capital-peru": "control", "prompt-0003": "refusal"}
    peru = pack.probe("capital-peru")
    assert peru.category == "control" and peru.expected == "Lima"
    assert load_pack(write_pack(pack, tmp_path / "p.yaml")) == pack


def test_prompt_csv_without_prompt_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("question,category\nHello?,gender\n")
    with pytest.raises(PackError) as info:
        import_prompt_csv(path)
    assert "'prompt'" in str(info.value) and "bad.csv" in str(info.value)


def test_prompt_csv_row_errors_name_line_and_column(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,category,prompt\na,gender,Fine question?\nb,astrology,Bad category?\n")
    with pytest.raises(PackError) as info:
        import_prompt_csv(path)
    assert info.value.line == 3 and info.value.field == "category" and "astrology" in str(info.value)
    path.write_text("id,category,prompt\na,gender,Fine question?\na,gender,Again?\n")
    with pytest.raises(PackError) as info:
        import_prompt_csv(path)
    assert info.value.line == 3 and info.value.field == "id"
    path.write_text("id,category,prompt\na,gender,   \n")
    with pytest.raises(PackError) as info:
        import_prompt_csv(path)
    assert info.value.field == "prompt"


def test_crows_identical_sentences_refused(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("sent_more,sent_less,bias_type\nSame words.,Same words.,gender\n")
    with pytest.raises(PackError) as info:
        import_crows(path)
    assert info.value.line == 2 and "same sentence" in str(info.value)


def test_bbq_bad_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text((DATA / "bbq_sample.jsonl").read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(PackError) as info:
        import_bbq(path)
    assert info.value.line == 2


def test_unknown_format():
    with pytest.raises(PackError, match="crows, bbq, csv"):
        import_file(DATA / "crows_sample.csv", "xlsx")
