"""Hostile answer text (row 12): kept byte-exact as evidence, plain text in the window, inert in the PDF."""

from __future__ import annotations

import csv
import json
import re

import pytest

from auditdesk.core.engine.base import Answer
from auditdesk.core.probes.items import ProbeItem

from .hostile import small_config

HOSTILE = [
    '<b>bold</b> <i>unclosed <font size="60" color="red">HUGE</font>',
    '<a href="https://evil.example/phish">click</a> <img src="/etc/passwd" width="900"/> <link href="file:///x">',
    "&amp; &lt;b&gt; &#x41; &#0; &nbsp; &unknown; &#x110000;",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
    "ctrl \x00\x01\x07\x08\x1b[31mred\x1b[0m\x7f\x9b end",
    "bidi \u202egnp.exe\u202c \u2066iso\u2069 \u200fmark\u200e zw\u200bsp \ufeffbom",
    "emoji 😀👩\u200d👩\u200d👧🔥🏳️\u200d🌈 and 🇪🇺",
    "CJK 中文测试 日本語のテキスト 한국어 텍스트",
    "RTL مرحبا بالعالم שלום עולם",
    "W" * 20_000,
    "lone surrogate-free but combining: e\u0301\u0301\u0301\u0301 Z\u0335\u0321\u0322",
    "\n".join(["many lines"] * 300),
]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, tiny_model, tiny_lora):
    """A real stored run whose answers are the hostile corpus (stored as the engine would store them)."""
    from report_sample import sample_findings
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    folder = tmp_path_factory.mktemp("hostile-run")
    findings = sample_findings(24)
    # The two top probes of the most concerning category are printed with three answers per model:
    # 2 probes x 2 models x 3 samples = the 12 hostile texts, each once.
    top = findings["categories"][0]["category"]
    chosen = [p for p in findings["probes"] if p["category"] == top][:2]
    for n, probe in enumerate(chosen):
        probe["flagged"], probe["divergence"] = True, 10.0 - n
    items = [ProbeItem(p["pack"], "1", p["probe_id"], p["category"], "open", "plain", f"question {i}")
             for i, p in enumerate(chosen)]
    store = open_store(folder / "audit.db")
    run_id = plan_run(small_config(tiny_model, lora=tiny_lora, samples=3), store, items=items)
    units = [u for u in store.units(run_id) if u["unit_type"] != "likelihood"]
    assert len(units) == len(HOSTILE)
    for unit, text in zip(units, HOSTILE):
        store.record_answer(run_id, unit, Answer(key=unit["unit_key"], text=text, completion_tokens=5))
    yield store, run_id, findings, folder
    store.close()


def test_hostile_text_is_stored_and_exported_byte_exact(hostile_run):
    from auditdesk.core.report.export import export_run

    store, run_id, findings, folder = hostile_run
    stored = [a["answer"] for a in store.answers(run_id)]
    assert sorted(stored) == sorted(HOSTILE)  # the database is evidence: nothing escaped or cut there
    out_csv, out_json = folder / "answers.csv", folder / "findings.json"
    export_run(store, run_id, csv_path=out_csv, json_path=out_json, findings=findings)
    with open(out_csv, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    text_column = next(k for k in rows[0] if k in ("answer", "text"))
    exported = {row[text_column] for row in rows}
    assert exported == set(HOSTILE)
    json.loads(out_json.read_text(encoding="utf-8"))


def test_hostile_text_is_inert_in_the_pdf(hostile_run):
    pypdf = pytest.importorskip("pypdf")
    from auditdesk.core.report.export import export_run

    store, run_id, findings, folder = hostile_run
    out = folder / "report.pdf"
    result = export_run(store, run_id, pdf=out, findings=findings)
    reader = pypdf.PdfReader(str(out))
    assert len(reader.pages) == result.pages
    flat = "".join("".join((page.extract_text() or "") for page in reader.pages).split())
    for literal in ("<b>bold</b>", '<ahref="https://evil.example/phish">click</a>', "&amp;&lt;b&gt;&#x41;",
                    "<!ENTITYeSYSTEM'file:///etc/passwd'>", "中文测试", "gnp.exe"):
        assert literal in flat, literal
    for code in ("[U+202E]", "[U+2066]", "[U+0000]", "[U+001B]", "[U+200B]", "[U+FEFF]"):
        assert code in flat, code
    assert result.hidden_characters > 0 and result.truncated_texts > 0
    for page in reader.pages:
        # No link was made from an answer: the only annotations are the sign-off block's signature fields.
        for annot in page.get("/Annots") or []:
            annot = annot.get_object()
            assert annot.get("/Subtype") == "/Widget" and annot.get("/FT") == "/Sig" and "/A" not in annot
        xobjects = (page.get("/Resources") or {}).get("/XObject") or {}
        assert all(x.get_object().get("/Subtype") != "/Image" for x in xobjects.values())


@pytest.mark.gui
def test_hostile_text_is_plain_text_in_the_window(qtbot):
    pytest.importorskip("pytestqt")
    from auditdesk.ui.widgets.common import AnswerView

    view = AnswerView("answers")
    qtbot.addWidget(view)
    view.set_answers(HOSTILE, [])
    shown = view.toPlainText().replace("\u2029", "\n")
    for text in HOSTILE:
        # Controls and bidi overrides could disguise an answer on screen: the window shows U+FFFD
        # for them; every other character, markup included, is shown as itself.
        visible = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]", "\ufffd", text)
        assert visible in shown, text[:40]
    assert "\u202e" not in shown and "\x1b" not in shown
    html = view.document().toHtml()
    assert "<img" not in html and 'href="https://evil' not in html and "<b>bold</b>" not in html
