"""Audits whose models run on OpenAI-compatible servers (real `llama_cpp.server` processes on 127.0.0.1)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.audit_job import AuditConfig, plan_run
from auditdesk.core.store import open_store

PACK = """\
schema_version: 1
id: remote-test
title: Remote test pack
description: Questions for the server tests.
version: "1.0"
licence: CC-BY-4.0
attribution: Written for the AuditDesk tests
probes:
  - id: q0
    kind: open
    category: customer-service
    concern: Does the answer change?
    prompt: Which hammer should I buy?
  - id: q1
    kind: open
    category: customer-service
    concern: Does the answer change?
    prompt: Who can help me choose a drill?
"""


@pytest.fixture(scope="module")
def servers(llama_server, tiny_model, tiny_lora):
    """The base model and the tuned one (base + adapter), each on its own server."""
    return llama_server(tiny_model), llama_server(tiny_model, "--lora_path", str(tiny_lora))


def _pack(tmp_path):
    path = tmp_path / "remote.yaml"
    path.write_text(PACK, encoding="utf-8")
    return path


def test_an_audit_of_two_models_on_servers_runs_and_reports_them_honestly(tmp_path, servers):
    base_url, tuned_url = servers
    db, out = tmp_path / "remote.db", tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "auditdesk", "audit", "--base-server", base_url, "--tuned-server", tuned_url,
         "--pack", str(_pack(tmp_path)), "--samples", "2", "--max-tokens", "8", "--db", str(db),
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    answers = conn.execute("SELECT role, answer FROM answers").fetchall()
    models = conn.execute("SELECT path, file_name, size_bytes, card_json FROM models").fetchall()
    config = json.loads(conn.execute("SELECT config_json FROM runs").fetchone()[0])
    conn.close()
    assert sorted(role for role, _ in answers) == ["base"] * 4 + ["tuned"] * 4
    assert all(text.strip() for _, text in answers)
    # Each server offers one model, so its name was looked up and recorded.
    assert config["base_model"] and config["tuned_model"] and config["base_server"] == base_url
    assert {path for path, *_ in models} == {f"{base_url}/v1", f"{tuned_url}/v1"}
    assert all(json.loads(card)["server"] for *_, card in models)

    findings = json.loads(next(out.glob("*-findings.json")).read_text())
    lineage = json.dumps(findings, ensure_ascii=False)
    assert "Not checked: the base model and the tuned model ran on a server" in lineage
    from pypdf import PdfReader

    text = " ".join(page.extract_text() for page in PdfReader(next(out.glob("*-report.pdf"))).pages)
    text = " ".join(text.split())
    assert f"none: the model ran on the server {base_url}/v1" in text


def test_server_problems_are_refused_before_anything_is_stored(tmp_path, servers, tiny_model, tiny_lora):
    base_url, _ = servers
    pack = str(_pack(tmp_path))
    cases = [
        (dict(base_model="no-such-model", base_server=base_url, tuned_model=str(tiny_model)),
         "has no model 'no-such-model'; it offers:"),
        (dict(base_model="", base_server=base_url, lora_adapter=str(tiny_lora)),
         "the base model cannot run on a server"),
        (dict(base_model="", base_server="http://127.0.0.1:9", tuned_model=str(tiny_model)),
         "could not reach the model server at http://127.0.0.1:9/v1"),
    ]
    with open_store(tmp_path / "refused.db") as store:
        for fields, message in cases:
            with pytest.raises(AuditDeskError, match=message.replace("(", r"\(").replace(")", r"\)")):
                plan_run(AuditConfig(packs=[pack], **fields), store)
        assert store.list_runs() == []


def test_one_model_on_a_server_and_one_here_is_flagged(tmp_path, servers, tiny_model):
    _, tuned_url = servers
    with open_store(tmp_path / "mixed.db") as store:
        run_id = plan_run(AuditConfig(base_model=str(tiny_model), tuned_server=tuned_url,
                                      packs=[str(_pack(tmp_path))], samples=1, max_tokens=4), store)
        notes = store.get_run(run_id)["notes"]
    assert any("two engines sample differently" in note for note in notes)
