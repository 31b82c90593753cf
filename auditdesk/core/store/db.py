"""The audit database: one SQLite file holding models, packs, runs, plans and evidence.

One `Store` owns one writer connection (WAL, synchronous=FULL: answers are
evidence). It never alters a database written by a newer AuditDesk (that one is
opened read-only), and backs an older one up before migrating it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.store.migrations import (
    MIGRATION_NAMES,
    SCHEMA_VERSION,
    applied_migrations,
    apply_migrations,
)

RUN_STATUSES = ("planned", "running", "paused", "cancelled", "failed", "completed")
RESUMABLE_STATUSES = ("planned", "running", "paused", "cancelled", "failed")
_SQLITE_FULL = 13


class StoreError(AuditDeskError):
    """The audit database cannot do what was asked."""


class DatabaseReadOnly(StoreError):
    """The database was opened read-only (newer schema, or on request)."""


class DiskFull(StoreError):
    """The disk (or the database's size limit) is full; nothing partial was written."""


class RunNotFound(StoreError):
    """No run with that id in this database."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == _SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == 28


def _read_only_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # A WAL database whose -shm file cannot be created (read-only folder):
        # `immutable` reads the main file as it is and never writes anything.
        conn.close()
        conn = sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, isolation_level=None
        )
        conn.row_factory = sqlite3.Row
    return conn


def _newer_schema_reason(conn: sqlite3.Connection, path: Path) -> str | None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    known = set(MIGRATION_NAMES)
    unknown = [name for name in applied_migrations(conn) if name not in known]
    if version > SCHEMA_VERSION or unknown:
        return (
            f"The audit database {path} was written by a newer version of AuditDesk "
            f"(schema {version}, this version knows {SCHEMA_VERSION}); it is opened "
            "read-only and will not be changed. Update AuditDesk to add to it."
        )
    return None


class Store:
    """The audit database, with one connection that is the only writer."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, read_only_reason: str | None = None):
        import sqlite_utils

        self.path = path
        self.conn = conn
        self.read_only_reason = read_only_reason
        self.db = sqlite_utils.Database(conn)
        self.backup_path: Path | None = None

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions -------------------------------------------------------

    def require_writable(self) -> None:
        if self.read_only_reason:
            raise DatabaseReadOnly(self.read_only_reason)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        self.require_writable()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                # Some errors (SQLITE_FULL among them) already rolled back.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except (sqlite3.OperationalError, OSError) as exc:
            if _is_disk_full(exc):
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise DiskFull(
                    "The disk holding the audit database is full; free some space and "
                    "continue with `auditdesk runs resume` (everything already stored is kept)."
                ) from exc
            raise

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    # -- models and packs ---------------------------------------------------

    def add_model(self, *, sha256: str, path: str, size_bytes: int, kind: str,
                  card: dict | None = None, file_name: str | None = None) -> None:
        """Record a model file (once per content hash; the latest path is kept)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO models (sha256, path, file_name, size_bytes, kind, card_json, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET path = excluded.path, "
                "card_json = COALESCE(excluded.card_json, models.card_json)",
                (sha256, path, file_name or Path(path).name, size_bytes, kind,
                 json.dumps(card, sort_keys=True) if card else None, utc_now()),
            )

    def model_cards(self, run: dict) -> dict:
        """The base and tuned model cards recorded for a run (cheap: no model file is read)."""
        models: dict = {}
        for role, column in (("base", "base_model_sha256"), ("tuned", "tuned_model_sha256"),
                             ("adapter", "adapter_sha256")):
            sha = run.get(column)
            rows = self.query("SELECT * FROM models WHERE sha256 = ?", (sha,)) if sha else []
            if rows:
                row = rows[0]
                card = json.loads(row["card_json"]) if row.get("card_json") else {}
                models[role] = {**card, "sha256": sha, "path": row["path"], "file_name": row["file_name"],
                                "size_bytes": row["size_bytes"]}
                if card.get("server"):  # no file here: the model is known by its name on the server
                    models[role]["file_name"] = "none: the model ran on a server"
        if "adapter" in models:  # the tuned model is the base plus this adapter
            models["tuned"] = {**models.pop("adapter"), "kind": "LoRA adapter"}
        return models

    def add_pack(self, *, content_hash: str, pack_id: str, version: str,
                 title: str = "", source: str = "") -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO packs (content_hash, pack_id, version, title, source, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (content_hash, pack_id, version, title, source, utc_now()),
            )

    # -- runs ---------------------------------------------------------------

    def create_run(self, run: dict, units: list[dict], pack_hashes: list[str]) -> int:
        """Insert a run and its whole plan in one transaction; return the run id."""
        fields = dict(run)
        fields.setdefault("status", "planned")
        fields.setdefault("created", utc_now())
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.transaction() as conn:
            cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(fields.values()))
            run_id = int(cursor.lastrowid)
            conn.executemany(
                "INSERT INTO run_packs (run_id, pack_hash) VALUES (?, ?)",
                [(run_id, h) for h in dict.fromkeys(pack_hashes)],
            )
            unit_columns = (
                "unit_key", "position", "role", "unit_type", "pack_id", "probe_id", "variant",
                "category", "kind", "sample_index", "seed", "prompt", "batch_no", "item_json",
            ) + (("reuse_key",) if units and "reuse_key" in units[0] else ())
            conn.executemany(
                f"INSERT INTO units (run_id, {', '.join(unit_columns)}) "
                f"VALUES (?, {', '.join('?' for _ in unit_columns)})",
                [(run_id, *(u[c] for c in unit_columns)) for u in units],
            )
        return run_id

    def get_run(self, run_id: int) -> dict:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"There is no audit run {run_id} in {self.path}; `auditdesk runs list` shows the runs.")
        run = dict(row)
        for key in ("config_json", "sampling_json", "host_json", "engine_info_json", "notes_json"):
            if run.get(key):
                run[key.removesuffix("_json")] = json.loads(run[key])
        return run

    def update_run(self, run_id: int, **fields: Any) -> None:
        if not fields:
            return
        for key in ("engine_info", "host"):
            if key in fields:
                fields[f"{key}_json"] = json.dumps(fields.pop(key), sort_keys=True)
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), int(run_id)))

    def set_status(self, run_id: int, status: str, **fields: Any) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(status)
        self.update_run(run_id, status=status, **fields)

    def run_summary(self, run_id: int) -> dict:
        """Run id, status, times and unit counts: what `runs show --json` prints."""
        run = self.get_run(run_id)
        return self._summary(run)

    def _summary(self, run: dict) -> dict:
        counts = {
            row["status"]: row["n"]
            for row in self.conn.execute(
                "SELECT status, count(*) AS n FROM units WHERE run_id = ? GROUP BY status", (run["id"],)
            )
        }
        planned = sum(counts.values())
        config = run.get("config") or json.loads(run["config_json"])
        return {
            "id": run["id"],
            "label": run["label"] or "",
            "status": run["status"],
            "created": run["created"],
            "started": run["started"],
            "ended": run["ended"],
            "units_planned": planned,
            "units_done": counts.get("done", 0) + counts.get("failed", 0),
            "units_failed": counts.get("failed", 0),
            "units_pending": counts.get("pending", 0),
            "base_model": config.get("base_model"),
            "tuned_model": config.get("tuned_model"),
            "lora_adapter": config.get("lora_adapter"),
            "packs": config.get("packs", []),
            "samples": config.get("samples"),
            "seed": run["seed"],
            "settings_fingerprint": run.get("settings_fingerprint") or "",
            "last_error": run["last_error"],
            **self.reused_counts(run["id"]),
            # Answers cut by the time limit end where this computer's speed put them: they are
            # the ones the reproduce command may not give again.
            "answers_cut_by_time": self.conn.execute(
                "SELECT count(*) FROM answers WHERE run_id = ? AND finish_reason = 'time'", (run["id"],)
            ).fetchone()[0],
        }

    def reused_counts(self, run_id: int) -> dict:
        """How many of a run's answers and likelihood scores were copied from other runs, not generated."""
        counts = {}
        for table, name in (("answers", "answers_reused"), ("likelihoods", "likelihoods_reused")):
            counts[name] = self.conn.execute(
                f"SELECT count(*) FROM {table} WHERE run_id = ? AND reused_from IS NOT NULL", (int(run_id),)
            ).fetchone()[0]
        return counts

    def answers_by_probe(self, run_id: int) -> dict:
        """A run's answers per probe for browsing: {"answers": {probe: {role: [...]}}, "prompts": {probe:
        question}, "meta": {probe: {pack, category}}, "kinds": {probe: kind}}; questions are the stored probes'."""
        answers: dict[str, dict[str, list[str]]] = {}
        questions: dict[str, str] = {}
        meta: dict[str, dict] = {}
        kinds: dict[str, str] = {}
        for row in self.conn.execute(
                "SELECT a.probe_id, a.pack_id, a.category, a.role, a.answer, u.kind, u.item_json FROM answers a "
                "JOIN units u ON u.id = a.unit_id WHERE a.run_id = ? ORDER BY a.id", (int(run_id),)):
            key = row["probe_id"]
            answers.setdefault(key, {"base": [], "tuned": []})[row["role"]].append(row["answer"])
            questions.setdefault(key, json.loads(row["item_json"])["text"])
            meta.setdefault(key, {"pack": row["pack_id"], "category": row["category"]})
            kinds.setdefault(key, row["kind"])
        for row in self.conn.execute("SELECT DISTINCT probe_id, kind FROM units WHERE run_id = ?", (int(run_id),)):
            kinds.setdefault(row["probe_id"], row["kind"])
        return {"answers": answers, "prompts": questions, "meta": meta, "kinds": kinds}

    def annotations(self, run_id: int) -> list[dict]:
        """The auditor's confirmations and dismissals for a run, oldest first."""
        return self.query("SELECT * FROM annotations WHERE run_id = ? ORDER BY id", (int(run_id),))

    def list_runs(self) -> list[dict]:
        """Every run's summary, newest first."""
        rows = self.conn.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
        return [self._summary(dict(row)) for row in rows]

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its plan, answers, scores, analyses and annotations."""
        self.get_run(run_id)
        with self.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    # -- plan and evidence ---------------------------------------------------

    def units(self, run_id: int) -> list[dict]:
        """The run's plan in execution order."""
        return self.query("SELECT * FROM units WHERE run_id = ? ORDER BY position", (int(run_id),))

    @staticmethod
    def _insert_answer(conn, run_id: int, unit: dict, text: str, prompt_tokens: int, completion_tokens: int,
                       finish_reason, seconds: float, error, reused_from=None) -> bool:  # noqa: ANN001
        """One answer row for `unit`, its unit marked done (or failed); False if it was already stored."""
        cursor = conn.execute(
            "INSERT OR IGNORE INTO answers (run_id, unit_id, unit_key, role, pack_id, probe_id, "
            "variant, category, sample_index, seed, prompt, answer, prompt_tokens, "
            "completion_tokens, finish_reason, seconds, error, created, reused_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (int(run_id), unit["id"], unit["unit_key"], unit["role"], unit["pack_id"],
             unit["probe_id"], unit["variant"], unit["category"], unit["sample_index"],
             unit["seed"], unit["prompt"], text, prompt_tokens, completion_tokens, finish_reason,
             seconds, error, utc_now(), reused_from),
        )
        if cursor.rowcount != 1:
            return False
        conn.execute("UPDATE units SET status = ? WHERE id = ?", ("failed" if error else "done", unit["id"]))
        return True

    @staticmethod
    def _insert_likelihood(conn, run_id: int, unit: dict, logprob: float | None, n_tokens: int | None,
                           error, reused_from=None) -> bool:  # noqa: ANN001
        """One likelihood row for `unit`, its unit marked done (or failed); False if it was already stored."""
        cursor = conn.execute(
            "INSERT OR IGNORE INTO likelihoods (run_id, unit_id, unit_key, role, pack_id, "
            "probe_id, variant, category, text, logprob, n_tokens, error, created, reused_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (int(run_id), unit["id"], unit["unit_key"], unit["role"], unit["pack_id"],
             unit["probe_id"], unit["variant"], unit["category"], unit["prompt"],
             logprob, n_tokens, error, utc_now(), reused_from),
        )
        if cursor.rowcount != 1:
            return False
        conn.execute("UPDATE units SET status = ? WHERE id = ?", ("failed" if error else "done", unit["id"]))
        return True

    def record_answer(self, run_id: int, unit: dict, answer) -> bool:
        """Store one answer in its own transaction; False if it was already stored."""
        with self.transaction() as conn:
            return self._insert_answer(conn, run_id, unit, answer.text or "", int(answer.prompt_tokens),
                                       int(answer.completion_tokens), answer.finish_reason, float(answer.seconds),
                                       answer.error)

    def record_likelihood(self, run_id: int, unit: dict, logprob: float | None,
                          n_tokens: int | None, error: str | None = None) -> bool:
        with self.transaction() as conn:
            return self._insert_likelihood(conn, run_id, unit, logprob, n_tokens, error)

    def copy_reused(self, run_id: int, found: list[tuple[dict, dict]]) -> int:
        """Store (unit, source row) pairs as this run's answers or scores, in one transaction.

        The copy keeps the source's text, tokens and finish reason, and names the
        source row in `reused_from`; each unit is marked done.
        """
        if not found:
            return 0
        stored = 0
        with self.transaction() as conn:
            for unit, source in found:
                if unit["unit_type"] == "likelihood":
                    stored += self._insert_likelihood(conn, run_id, unit, source["logprob"], source["n_tokens"], None,
                                                      source["id"])
                else:
                    stored += self._insert_answer(conn, run_id, unit, source["answer"], source["prompt_tokens"],
                                                  source["completion_tokens"], source["finish_reason"],
                                                  source["seconds"], None, source["id"])
        return stored

    def answers(self, run_id: int, role: str | None = None) -> list[dict]:
        sql = "SELECT * FROM answers WHERE run_id = ?"
        params: tuple = (int(run_id),)
        if role:
            sql += " AND role = ?"
            params += (role,)
        return self.query(sql + " ORDER BY unit_id", params)

    def likelihoods(self, run_id: int) -> list[dict]:
        return self.query("SELECT * FROM likelihoods WHERE run_id = ? ORDER BY unit_id", (int(run_id),))

    # -- analyses and annotations ----------------------------------------------

    def add_analysis(self, run_id: int, findings: dict, format_version: str) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO analyses (run_id, created, format_version, findings_json) VALUES (?, ?, ?, ?)",
                (int(run_id), utc_now(), format_version, json.dumps(findings, sort_keys=True)),
            )
        return int(cursor.lastrowid)

    def latest_analysis(self, run_id: int) -> dict | None:
        row = self.conn.execute(
            "SELECT * FROM analyses WHERE run_id = ? ORDER BY id DESC LIMIT 1", (int(run_id),)
        ).fetchone()
        if row is None:
            return None
        result = dict(row)
        result["findings"] = json.loads(result.pop("findings_json"))
        return result

    def add_annotation(self, run_id: int, *, status: str, note: str = "",
                       probe_id: str | None = None, finding_id: str | None = None) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO annotations (run_id, probe_id, finding_id, status, note, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (int(run_id), probe_id, finding_id, status, note, utc_now()),
            )
        return int(cursor.lastrowid)

    def integrity_check(self) -> str:
        """"ok", or what SQLite found wrong (a damaged file is a result, not a crash)."""
        try:
            rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        return "\n".join(str(row[0]) for row in rows)


def open_store(path: str | os.PathLike | None = None, *, read_only: bool = False) -> Store:
    """Open (creating or migrating as needed) the audit database at `path`.

    A database from a newer AuditDesk, or `read_only=True`, gives a Store whose
    `read_only_reason` says why and whose writes raise `DatabaseReadOnly`.
    """
    if path is None:
        from auditdesk.core.paths import default_db_path

        path = default_db_path()
    path = Path(path).expanduser()

    if path.exists():
        probe = None
        try:
            probe = _read_only_connection(path)
            reason = _newer_schema_reason(probe, path)
            old_version = probe.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if probe is not None:
                probe.close()
            raise StoreError(f"{path} is not an AuditDesk database (or it is damaged): {exc}.") from exc
        if reason or (read_only and old_version >= SCHEMA_VERSION):
            return Store(path, probe, read_only_reason=reason or f"{path} was opened read-only.")
        probe.close()
        if read_only:
            # An older database lacks columns every reader expects: upgrade it first (a backup is kept).
            if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
                raise StoreError(f"{path} was written by an older AuditDesk and must be upgraded before it can be "
                                 "read, but it is read-only here; open it once where it can be written "
                                 "(a backup is kept).")
            open_store(path).close()
            return open_store(path, read_only=True)
    elif read_only:
        raise StoreError(f"There is no audit database at {path}.")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        old_version = 0

    # check_same_thread=False: the window hands the store to one worker thread,
    # which is then its only user (one writer connection, never shared at once).
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    store = Store(path, conn)
    if old_version and old_version < SCHEMA_VERSION:
        store.backup_path = _backup(conn, path, old_version)
    try:
        apply_migrations(store.db)
    except BaseException:
        conn.close()
        raise
    return store


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the database (consistently, WAL included) before migrating it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.schema{version}-{stamp}.bak")
    if shutil.disk_usage(path.parent).free < path.stat().st_size * 2:
        raise DiskFull(
            f"There is not enough free disk space to back up {path} before upgrading it; "
            "free some space and try again."
        )
    dest = sqlite3.connect(str(target))
    try:
        conn.backup(dest)
    finally:
        dest.close()
    return target
