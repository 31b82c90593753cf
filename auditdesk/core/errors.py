"""Turns exceptions into one sentence a compliance officer can act on."""

from __future__ import annotations

import errno


class AuditDeskError(Exception):
    """An error whose message is already written for the user."""


def describe_error(exc: BaseException) -> str:
    """One line that says what happened and, where possible, what to do."""
    if isinstance(exc, AuditDeskError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full; free some space and run the command again (nothing already stored was lost)."
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    name = type(exc).__name__
    text = str(exc).strip() or name
    # Our own error types already carry a user-facing message.
    if type(exc).__module__.startswith("auditdesk"):
        return text
    return f"{text} ({name}); run with AUDITDESK_DEBUG=1 for details."
