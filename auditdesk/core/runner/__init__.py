"""Audit runs: a fixed plan of work units executed through an engine into the store."""

from auditdesk.core.runner.audit import (  # noqa: F401
    AuditConfig,
    ModelChanged,
    RunNotResumable,
    plan_run,
    resume_run,
    run_audit,
)
from auditdesk.core.runner.runner import RunCancelled, RunStats  # noqa: F401
