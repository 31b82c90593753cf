"""The audit database: runs, their plans, and the evidence they produce (SQLite)."""

from auditdesk.core.store.db import (  # noqa: F401
    DatabaseReadOnly,
    DiskFull,
    RunNotFound,
    Store,
    StoreError,
    open_store,
)
