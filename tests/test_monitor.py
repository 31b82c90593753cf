"""Monitors on the tiny real model: add, run twice (answers reused, no drift), a new version, list, show, remove."""

from __future__ import annotations

import json
import shutil

import pytest

from auditdesk.cli.main import main
from auditdesk.core.models.tiny import write_tiny_lora
from auditdesk.core.store import open_store
from open_pack import write_pack

SETTINGS = ["--samples", "4", "--max-tokens", "10", "--seed", "1", "--threads", "2", "--n-ctx", "256",
            "--backend", "llama-inproc"]




@pytest.fixture(scope="module")
def monitored(tmp_path_factory, tiny_model, tiny_lora):
    """A monitor of a vendor adapter run twice unchanged, then once after the vendor replaced the file."""
    tmp = tmp_path_factory.mktemp("monitor")
    adapter = tmp / "vendor.gguf"
    shutil.copyfile(tiny_lora, adapter)
    db = str(tmp / "monitor.db")
    assert main(["monitor", "add", "vendor", "--base", str(tiny_model), "--lora", str(adapter),
                 "--pack", str(write_pack(tmp)), "--every", "7d", "--db", db, *SETTINGS]) == 0
    codes = []
    for n in range(2):
        codes.append(main(["monitor", "run", "vendor", "--db", db, "--quiet",
                           "--summary", str(tmp / f"run{n}.json")]))
    write_tiny_lora(adapter, tiny_model, seed=7)  # version 2 of the vendor's adapter, same path
    codes.append(main(["monitor", "run", "vendor", "--db", db, "--quiet", "--summary", str(tmp / "run2.json")]))
    return tmp, db, codes


def test_monitor_runs_reuse_answers_and_find_no_drift_when_nothing_changed(monitored):
    tmp, db, codes = monitored
    first, second = (json.loads((tmp / f"run{n}.json").read_text()) for n in range(2))
    assert codes[0] == (3 if first["new_concerns"] else 0)
    assert first["compared_with"] is None and first["drift"] == {}
    assert second["compared_with"] == first["run_id"]
    assert set(second["drift"]) == {"customer-service", "misalignment"}
    assert set(second["drift"].values()) == {"unchanged"}
    assert second["new_concerns"] == [] and codes[1] == 0
    with open_store(db, read_only=True) as store:
        planned = store.run_summary(second["run_id"])
        assert second["reused"]["answers_reused"] == planned["units_planned"]  # nothing generated again
        assert store.run_summary(first["run_id"])["answers_reused"] == 0
    assert "No new concern." in (tmp / "run1.txt").read_text()


def test_a_new_version_is_audited_against_the_last_one(monitored):
    tmp, db, codes = monitored
    second, third = (json.loads((tmp / f"run{n}.json").read_text()) for n in (1, 2))
    assert third["compared_with"] == second["run_id"]
    with open_store(db, read_only=True) as store:
        runs = {r["id"]: r for r in store.list_runs()}
        base_units = sum(1 for u in store.units(third["run_id"]) if u["role"] == "base")
        assert store.get_run(third["run_id"])["adapter_sha256"] != store.get_run(second["run_id"])["adapter_sha256"]
    assert third["reused"]["answers_reused"] == base_units  # the base answers only
    assert runs[third["run_id"]]["status"] == "completed"
    assert "changed" in third["drift"].values() or "concerning" in third["drift"].values()
    assert codes[2] == (3 if third["new_concerns"] else 0)


def test_monitor_list_show_remove(monitored, capsys):
    tmp, db, _ = monitored
    capsys.readouterr()
    assert main(["monitor", "list", "--json", "--db", db]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["every"], listed["runs"]) == ("vendor", "7d", 3)
    assert main(["monitor", "show", "vendor", "--json", "--db", db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["compared_with"] for r in data["runs"]][1:] == [r["run_id"] for r in data["runs"]][:-1]
    assert data["categories"] == ["customer-service", "misalignment"]
    assert main(["monitor", "show", "vendor", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "customer-service" in text and "new concerns" in text
    assert main(["monitor", "list", "--db", db]) == 0
    assert "vendor" in capsys.readouterr().out

    copy = tmp / "copy.db"
    shutil.copyfile(db, copy)
    assert main(["monitor", "remove", "vendor", "--db", str(copy)]) == 0
    assert main(["monitor", "list", "--json", "--db", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == []
    with open_store(copy, read_only=True) as store:
        assert len(store.list_runs()) == 3  # the audits stay
    assert main(["monitor", "show", "vendor", "--db", str(copy)]) == 1
    assert "no monitor called vendor" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["bad name"], "monitor name"),
    (["ok", "--every", "7x"], "--every takes"),
    (["ok", "--reference", "99"], "no audit run 99"),
])
def test_monitor_add_refuses_bad_input_with_one_line(tmp_path, tiny_model, tiny_lora, capsys, args, message):
    code = main(["monitor", "add", *args[:1], "--base", str(tiny_model), "--lora", str(tiny_lora),
                 "--pack", "quick", "--db", str(tmp_path / "m.db"), *args[1:]])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_monitor_name_is_unique(tmp_path, tiny_model, tiny_lora, capsys):
    args = ["monitor", "add", "one", "--base", str(tiny_model), "--lora", str(tiny_lora), "--pack", "quick",
            "--db", str(tmp_path / "m.db")]
    assert main(args) == 0
    assert main(args) == 1
    assert "already a monitor called one" in capsys.readouterr().err


def test_monitor_run_writes_junit_and_gates_like_audit(tmp_path, tiny_model, tiny_lora):
    import xml.etree.ElementTree as ET

    from auditdesk.core.report.junit import failing_categories

    db = str(tmp_path / "ci.db")
    assert main(["monitor", "add", "ci", "--base", str(tiny_model), "--lora", str(tiny_lora),
                 "--pack", str(write_pack(tmp_path)), "--db", db, *SETTINGS]) == 0
    junit = tmp_path / "monitor.xml"
    code = main(["monitor", "run", "ci", "--db", db, "--quiet", "--fail-on", "changed", "--junit", str(junit),
                 "--summary", str(tmp_path / "ci.json")])
    outcome = json.loads((tmp_path / "ci.json").read_text())
    with open_store(db, read_only=True) as store:
        failing = failing_categories(store.latest_analysis(outcome["run_id"])["findings"], "changed")
    assert code == (3 if failing or outcome["new_concerns"] else 0)
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and len(root.findall("./testsuite/testcase")) == 2
    assert sorted(c.get("name") for c in root.iter("testcase") if c.find("failure") is not None) == sorted(failing)


def test_monitoring_report_pdf(monitored, tmp_path):
    from pypdf import PdfReader

    from auditdesk.core.report.monitoring_pdf import SECTION_HEADINGS

    _, db, _ = monitored
    pdf = tmp_path / "monitoring.pdf"
    assert main(["monitor", "report", "vendor", "--pdf", str(pdf), "--db", db]) == 0
    text = " ".join(page.extract_text() for page in PdfReader(str(pdf)).pages)
    text = " ".join(text.split())
    for heading in SECTION_HEADINGS:
        assert heading in text
    with open_store(db, read_only=True) as store:
        runs = sorted(r["id"] for r in store.list_runs())
        adapters = {store.get_run(r)["adapter_sha256"][:16] for r in runs}
    assert all(f"run {r}" in text for r in runs)
    assert all(sha in text for sha in adapters)  # each run's fingerprint: the adapter's SHA-256
    assert "customer-service" in text and "misalignment" in text
    assert f"Tuned model of run {runs[1]} against the tuned model of run {runs[2]}" in text


def test_a_reference_run_never_analysed_is_analysed_before_concerns_are_called_new(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.audit_job import AuditConfig, plan_run, run_job

    db = tmp_path / "ref.db"
    pack = write_pack(tmp_path)
    with open_store(db) as store:
        config = AuditConfig(base_model=str(tiny_model), lora_adapter=str(tiny_lora), packs=[str(pack)], samples=3,
                             max_tokens=8, seed=2, threads=2, n_ctx=256, backend="llama-inproc")
        reference = run_job(store, config=config, analyse=False).run_id
        assert store.latest_analysis(reference) is None
    assert main(["monitor", "add", "ref", "--base", str(tiny_model), "--lora", str(tiny_lora), "--pack", str(pack),
                 "--reference", str(reference), "--db", str(db), *SETTINGS]) == 0
    code = main(["monitor", "run", "ref", "--db", str(db), "--quiet", "--summary", str(tmp_path / "ref.json")])
    outcome = json.loads((tmp_path / "ref.json").read_text())
    with open_store(db, read_only=True) as store:
        before = store.latest_analysis(reference)
    assert before is not None  # analysed from its stored answers, not treated as "nothing was concerning"
    assert outcome["compared_with"] == reference and code == (3 if outcome["new_concerns"] else 0)
    was = {row["category"] for row in before["findings"]["categories"] if row["concern"]}
    assert not set(outcome["new_concerns"]) & was
