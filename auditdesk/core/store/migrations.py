"""Named, atomic schema migrations for the audit database (sqlite-utils `Migrations`).

Each migration runs once, in one transaction, and is recorded in
`_sqlite_migrations`; it also sets `PRAGMA user_version` to its position so any
tool can tell the schema version. A shipped migration is never edited: a schema
change is always a new function appended below.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database, Migrations

MIGRATION_SET = "auditdesk"
migrations = Migrations(MIGRATION_SET)


@migrations(name="001_initial_schema")
def _m001_initial_schema(db: Database) -> None:
    conn = db.conn
    # Plain DDL (not sqlite-utils' create) because the schema needs ON DELETE
    # CASCADE and CHECK constraints, and reads best in any SQLite tool this way.
    _execute_script(
        conn,
        """
        CREATE TABLE models (
            sha256 TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            file_name TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('model', 'adapter')),
            card_json TEXT,
            first_seen TEXT NOT NULL
        );

        CREATE TABLE packs (
            content_hash TEXT PRIMARY KEY,
            pack_id TEXT NOT NULL,
            version TEXT NOT NULL,
            title TEXT,
            source TEXT,
            first_seen TEXT NOT NULL
        );
        CREATE INDEX idx_packs_pack_id ON packs (pack_id);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            label TEXT,
            status TEXT NOT NULL CHECK (status IN
                ('planned', 'running', 'paused', 'cancelled', 'failed', 'completed')),
            created TEXT NOT NULL,
            started TEXT,
            ended TEXT,
            config_json TEXT NOT NULL,
            seed INTEGER NOT NULL,
            base_model_sha256 TEXT NOT NULL REFERENCES models (sha256),
            tuned_model_sha256 TEXT REFERENCES models (sha256),
            adapter_sha256 TEXT REFERENCES models (sha256),
            sampling_json TEXT NOT NULL,
            prompt_format TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            llama_cpp_version TEXT,
            host_json TEXT,
            engine_info_json TEXT,
            runner_pid INTEGER,
            runner_host TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX idx_runs_status ON runs (status);

        CREATE TABLE run_packs (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            pack_hash TEXT NOT NULL REFERENCES packs (content_hash),
            PRIMARY KEY (run_id, pack_hash)
        );

        -- The plan: every unit of work a run will do, fixed when the run is created.
        CREATE TABLE units (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            unit_key TEXT NOT NULL,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('base', 'tuned')),
            unit_type TEXT NOT NULL CHECK (unit_type IN ('generate', 'likelihood')),
            pack_id TEXT NOT NULL,
            probe_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            category TEXT NOT NULL,
            kind TEXT NOT NULL,
            sample_index INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            batch_no INTEGER NOT NULL,
            item_json TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
            UNIQUE (run_id, unit_key)
        );
        CREATE INDEX idx_units_run_batch ON units (run_id, role, batch_no);
        CREATE INDEX idx_units_run_status ON units (run_id, status);

        -- Evidence: one row per sampled answer, written in its own transaction.
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            unit_id INTEGER NOT NULL REFERENCES units (id) ON DELETE CASCADE,
            unit_key TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('base', 'tuned')),
            pack_id TEXT NOT NULL,
            probe_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            category TEXT NOT NULL,
            sample_index INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            finish_reason TEXT NOT NULL,
            seconds REAL NOT NULL DEFAULT 0,
            error TEXT,
            created TEXT NOT NULL,
            UNIQUE (run_id, unit_key)
        );
        CREATE INDEX idx_answers_run_role ON answers (run_id, role);
        CREATE INDEX idx_answers_run_category ON answers (run_id, category);
        CREATE INDEX idx_answers_run_probe ON answers (run_id, probe_id);

        -- Log-likelihood of each sentence of a pair probe, per model role.
        CREATE TABLE likelihoods (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            unit_id INTEGER NOT NULL REFERENCES units (id) ON DELETE CASCADE,
            unit_key TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('base', 'tuned')),
            pack_id TEXT NOT NULL,
            probe_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            category TEXT NOT NULL,
            text TEXT NOT NULL,
            logprob REAL,
            n_tokens INTEGER,
            error TEXT,
            created TEXT NOT NULL,
            UNIQUE (run_id, unit_key)
        );
        CREATE INDEX idx_likelihoods_run_role ON likelihoods (run_id, role);
        CREATE INDEX idx_likelihoods_run_probe ON likelihoods (run_id, probe_id);

        -- Shared across runs: an embedding depends only on the text and the model.
        CREATE TABLE embeddings (
            text_hash TEXT NOT NULL,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (text_hash, model)
        );

        CREATE TABLE analyses (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            format_version TEXT NOT NULL,
            findings_json TEXT NOT NULL
        );
        CREATE INDEX idx_analyses_run ON analyses (run_id);

        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            probe_id TEXT,
            finding_id TEXT,
            status TEXT NOT NULL CHECK (status IN ('confirmed', 'dismissed')),
            note TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL
        );
        CREATE INDEX idx_annotations_run ON annotations (run_id);
        CREATE INDEX idx_annotations_run_probe ON annotations (run_id, probe_id);
        """,
    )
    # user_version lives in the file header and commits with this transaction.
    conn.execute("PRAGMA user_version = 1")


@migrations(name="002_run_notes")
def _m002_run_notes(db: Database) -> None:
    # Things the user must know about how a run was done (e.g. the chat template
    # could not be used and the plain format was), shown in `runs show` and the report.
    db.conn.execute("ALTER TABLE runs ADD COLUMN notes_json TEXT")
    db.conn.execute("PRAGMA user_version = 2")


@migrations(name="003_settings_fingerprint")
def _m003_settings_fingerprint(db: Database) -> None:
    # A hash of everything that determines a run's answers, shown in `runs list/show`,
    # the findings and the report, so two audits are known to be comparable.
    db.conn.execute("ALTER TABLE runs ADD COLUMN settings_fingerprint TEXT")
    db.conn.execute("PRAGMA user_version = 3")


@migrations(name="004_answer_reuse")
def _m004_answer_reuse(db: Database) -> None:
    # An answer is fixed by its reuse key (model hashes, prompt, every sampling and
    # engine setting, seed, sample, the batch it runs in); a unit whose key already
    # has a stored answer in any run copies it, and `reused_from` names the source row.
    conn = db.conn
    conn.execute("ALTER TABLE units ADD COLUMN reuse_key TEXT")
    conn.execute("CREATE INDEX idx_units_reuse_key ON units (reuse_key)")
    conn.execute("ALTER TABLE answers ADD COLUMN reused_from INTEGER")
    conn.execute("ALTER TABLE likelihoods ADD COLUMN reused_from INTEGER")
    conn.execute("PRAGMA user_version = 4")


@migrations(name="005_monitoring")
def _m005_monitoring(db: Database) -> None:
    # Drift comparisons (the tuned answers of run A as "base" against run B's) and
    # monitors: a named audit re-run on a schedule, with one row per monitored run.
    _execute_script(
        db.conn,
        """
        CREATE TABLE comparisons (
            id INTEGER PRIMARY KEY,
            run_a INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            run_b INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            format_version TEXT NOT NULL,
            findings_json TEXT NOT NULL
        );
        CREATE INDEX idx_comparisons_runs ON comparisons (run_a, run_b);

        CREATE TABLE monitors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            config_json TEXT NOT NULL,
            every_seconds INTEGER,
            reference_run INTEGER REFERENCES runs (id) ON DELETE SET NULL,
            created TEXT NOT NULL
        );

        CREATE TABLE monitor_runs (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
            run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
            compared_with INTEGER REFERENCES runs (id) ON DELETE SET NULL,
            comparison_id INTEGER REFERENCES comparisons (id) ON DELETE SET NULL,
            outcome_json TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE INDEX idx_monitor_runs_monitor ON monitor_runs (monitor_id);
        """,
    )
    db.conn.execute("PRAGMA user_version = 5")


@migrations(name="006_run_fingerprints")
def _m006_run_fingerprints(db: Database) -> None:
    # A model on a server cannot be hashed: its behaviour on a fixed probe set is
    # stored per run instead, so a swapped model behind the same address shows.
    _execute_script(
        db.conn,
        """
        CREATE TABLE run_fingerprints (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('base', 'tuned')),
            digest TEXT NOT NULL,
            fingerprint_json TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (run_id, role)
        );
        """,
    )
    db.conn.execute("PRAGMA user_version = 6")


# Append new migrations above this line; never edit one that has shipped.
MIGRATION_NAMES = [m.name for m in migrations._migrations]
SCHEMA_VERSION = len(MIGRATION_NAMES)


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of AuditDesk migrations already applied to this database, in order."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        (Migrations.migrations_table,),
    ).fetchone()
    if not exists:
        return []
    return [
        row[0]
        for row in conn.execute(
            f"SELECT name FROM {Migrations.migrations_table} WHERE migration_set = ? ORDER BY rowid",
            (MIGRATION_SET,),
        )
    ]


def apply_migrations(db: Database) -> list[str]:
    """Apply every pending migration, each atomically; return the names applied."""
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction.

    `Connection.executescript` would COMMIT first, which breaks atomicity.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:80]}")
