"""`auditdesk report RUN --pdf --json --csv` against a real SQLite store."""

from __future__ import annotations

import csv
import json

import pytest

pypdf = pytest.importorskip("pypdf")

from auditdesk.cli.main import main  # noqa: E402
from report_sample import sample_findings  # noqa: E402
from auditdesk.core.store import open_store  # noqa: E402


def _stored_run(db_path) -> int:
    base_sha, tuned_sha = "c" * 64, "d" * 64
    with open_store(db_path) as store:
        store.add_model(sha256=base_sha, path="/models/base.gguf", size_bytes=10, kind="model", card={"name": "Base M"})
        store.add_model(sha256=tuned_sha, path="/models/tuned.gguf", size_bytes=10, kind="model", card={"name": "Tuned M"})
        run_id = store.create_run({
            "config_json": json.dumps({"base_model": "/models/base.gguf", "tuned_model": "/models/tuned.gguf",
                                       "packs": ["quick"], "samples": 3, "seed": 5}),
            "seed": 5, "base_model_sha256": base_sha, "tuned_model_sha256": tuned_sha,
            "sampling_json": json.dumps({"temperature": 0.8}), "prompt_format": "plain", "tool_version": "0.1.0",
        }, [], [])
        findings = sample_findings(12)
        findings["models"] = {}  # the store's cards must fill these in
        store.add_analysis(run_id, findings, "1")
        store.add_annotation(run_id, status="dismissed", note="Style only, not a concern.", probe_id="age-001")
    return run_id


def test_report_command_writes_all_three_files(tmp_path, capsys):
    db = tmp_path / "audit.db"
    run_id = _stored_run(db)
    pdf, js, cs = tmp_path / "r.pdf", tmp_path / "f.json", tmp_path / "a.csv"
    rc = main(["report", str(run_id), "--db", str(db), "--pdf", str(pdf), "--json", str(js), "--csv", str(cs),
               "--organisation", "Contoso Ltd", "--auditor", "Sam Reviewer"])
    assert rc == 0
    text = "".join("\n".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages).split())
    assert "c" * 64 in text and "d" * 64 in text and "ContosoLtd" in text
    assert "Styleonly,notaconcern." in text  # the stored analyst note
    # The complete command: every setting that shapes the answers, not only models, packs and seed.
    assert ("auditdeskaudit--base/models/base.gguf--tuned/models/tuned.gguf--packquick--samples3--max-tokens64"
            "--seed5--temperature0.8--top-p0.95--top-k40--n-ctx2048--prompt-formatauto") in text
    assert json.loads(js.read_text(encoding="utf-8"))["models"]["base"]["sha256"] == "c" * 64
    assert next(csv.reader(open(cs, encoding="utf-8")))[0] == "run"


def test_report_command_explains_a_run_with_no_answers(tmp_path, capsys):
    db = tmp_path / "audit.db"
    with open_store(db) as store:
        store.add_model(sha256="e" * 64, path="/m.gguf", size_bytes=1, kind="model")
        run_id = store.create_run({"config_json": "{}", "seed": 1, "base_model_sha256": "e" * 64,
                                   "sampling_json": "{}", "prompt_format": "plain", "tool_version": "0.1.0"}, [], [])
    rc = main(["report", str(run_id), "--db", str(db), "--pdf", str(tmp_path / "r.pdf")])
    assert rc == 1
    # A run never analysed is analysed on export; one with no answers yet is refused in words.
    assert "has no stored answers yet" in capsys.readouterr().err
    assert not (tmp_path / "r.pdf").exists()
