"""The audit database: schema, migrations, newer-schema refusal, disk full, deletes."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from auditdesk.core.engine.base import Answer
from auditdesk.core.store import DatabaseReadOnly, DiskFull, RunNotFound, open_store
from auditdesk.core.store.migrations import MIGRATION_NAMES, SCHEMA_VERSION


def _run_fields(**extra):
    fields = {
        "config_json": "{}", "seed": 0, "base_model_sha256": "a" * 64, "sampling_json": "{}",
        "prompt_format": "plain-qa-v1", "tool_version": "test",
    }
    fields.update(extra)
    return fields


def _units(n):
    return [{
        "unit_key": f"base/p/q{i}/plain/s0", "position": i, "role": "base", "unit_type": "generate",
        "pack_id": "p", "probe_id": f"q{i}", "variant": "plain", "category": "gender", "kind": "open",
        "sample_index": 0, "seed": i, "prompt": f"Question: q{i}\nAnswer:", "batch_no": i // 4,
        "item_json": "{}",
    } for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "audit.db")
    s.add_model(sha256="a" * 64, path="/m.gguf", size_bytes=1, kind="model")
    yield s
    s.close()


def test_new_database_has_schema_wal_and_full_sync(store):
    tables = set(store.db.table_names())
    assert {"models", "packs", "runs", "units", "answers", "likelihoods", "embeddings",
            "analyses", "annotations"} <= tables
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    emb = {c.name: c.type for c in store.db["embeddings"].columns}
    assert emb == {"text_hash": "TEXT", "model": "TEXT", "dim": "INTEGER", "vector": "BLOB"}
    assert store.db["embeddings"].pks == ["text_hash", "model"]
    answer_indexes = {tuple(i.columns) for i in store.db["answers"].indexes}
    assert {("run_id", "role"), ("run_id", "category"), ("run_id", "probe_id")} <= answer_indexes


def test_migrations_are_recorded_once(tmp_path):
    path = tmp_path / "audit.db"
    open_store(path).close()
    store = open_store(path)
    names = [r["name"] for r in store.query("SELECT name FROM _sqlite_migrations")]
    assert names == MIGRATION_NAMES
    assert store.backup_path is None  # nothing to migrate, nothing backed up
    store.close()


def test_newer_schema_opens_read_only_and_is_never_altered(tmp_path):
    path = tmp_path / "audit.db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('auditdesk', '999_future', 'x')")
    conn.commit()
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    store = open_store(path)
    assert store.read_only
    assert "newer version of AuditDesk" in store.read_only_reason
    assert store.list_runs() == []  # reading still works
    with pytest.raises(DatabaseReadOnly, match="newer version"):
        store.add_model(sha256="b" * 64, path="/x", size_bytes=1, kind="model")
    store.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "audit.db-wal").exists() or (tmp_path / "audit.db-wal").stat().st_size == 0


def test_an_older_database_opened_read_only_is_upgraded_first(tmp_path):
    """`runs list` on a database from an older AuditDesk once failed with "no such column: reused_from"."""
    from sqlite_utils import Database

    from auditdesk.core.store.migrations import migrations

    path = tmp_path / "old.db"
    old = Database(str(path))
    migrations.apply(old, stop_before="004_answer_reuse")
    old.conn.close()
    store = open_store(path, read_only=True)
    try:
        assert store.read_only
        assert store.list_runs() == []
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()
    assert list(tmp_path.glob("old.db.schema3-*.bak"))  # the older database was kept


def test_create_run_and_record_answer_once(store):
    run_id = store.create_run(_run_fields(), _units(3), [])
    unit = store.units(run_id)[0]
    answer = Answer(key=unit["unit_key"], text="hello", completion_tokens=1)
    assert store.record_answer(run_id, unit, answer) is True
    assert store.record_answer(run_id, unit, Answer(key=unit["unit_key"], text="other")) is False
    rows = store.answers(run_id)
    assert [r["answer"] for r in rows] == ["hello"]
    summary = store.run_summary(run_id)
    assert (summary["units_planned"], summary["units_done"], summary["units_pending"]) == (3, 1, 2)


def test_two_runs_and_delete_cascades(store):
    first = store.create_run(_run_fields(), _units(2), [])
    second = store.create_run(_run_fields(), _units(2), [])
    for run_id in (first, second):
        unit = store.units(run_id)[0]
        store.record_answer(run_id, unit, Answer(key=unit["unit_key"], text=f"run {run_id}"))
    store.add_analysis(first, {"x": 1}, "1")
    store.add_annotation(first, status="confirmed", probe_id="q0", note="seen")
    assert [r["id"] for r in store.list_runs()] == [second, first]  # newest first
    store.delete_run(first)
    assert [r["id"] for r in store.list_runs()] == [second]
    for table in ("units", "answers", "analyses", "annotations"):
        assert store.query(f"SELECT count(*) AS n FROM {table} WHERE run_id = ?", (first,))[0]["n"] == 0
    assert store.answers(second)[0]["answer"] == f"run {second}"
    with pytest.raises(RunNotFound):
        store.get_run(first)


def test_disk_full_raises_clear_error_and_leaves_no_partial_rows(store):
    run_id = store.create_run(_run_fields(), _units(400), [])
    units = store.units(run_id)
    page_count = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {page_count + 2}")
    big = "x" * 3000  # a few answers fill the two spare pages
    stored = 0
    with pytest.raises(DiskFull, match="disk .* is full"):
        for unit in units:
            store.record_answer(run_id, unit, Answer(key=unit["unit_key"], text=big))
            stored += 1
    assert not store.conn.in_transaction
    answers = store.answers(run_id)
    assert len(answers) == stored
    done = store.query("SELECT count(*) AS n FROM units WHERE run_id = ? AND status != 'pending'", (run_id,))[0]["n"]
    assert done == stored  # the unit status and its answer commit together, or neither
    assert store.integrity_check() == "ok"
    store.conn.execute("PRAGMA max_page_count = 1073741823")
    unit = units[stored]
    assert store.record_answer(run_id, unit, Answer(key=unit["unit_key"], text=big))


def test_a_run_another_live_process_is_running_is_not_deleted(store):
    import socket
    import subprocess
    import sys

    from auditdesk.core.audit_job import RunNotResumable, delete_run

    run_id = store.create_run(_run_fields(), _units(2), [])
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.set_status(run_id, "running", runner_pid=worker.pid, runner_host=socket.gethostname())
        with pytest.raises(RunNotResumable, match=f"pid {worker.pid}.*cancel it there"):
            delete_run(store, run_id)
        assert store.get_run(run_id)["status"] == "running"
    finally:
        worker.kill()
        worker.wait()
    delete_run(store, run_id)  # the runner died: the run can go
    with pytest.raises(RunNotFound):
        store.get_run(run_id)
