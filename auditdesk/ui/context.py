"""What a page of the window is given: the session, the task runner, the settings and navigation.

Pages get a `PageContext`, never the window, so no page reaches into the window's
widgets or into another page; the window builds one context and hands it to each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from auditdesk.ui.settings import WindowSettings
from auditdesk.ui.state import AuditSession
from auditdesk.ui.workers import TaskManager


@dataclass(frozen=True)
class PageContext:
    session: AuditSession
    tasks: TaskManager
    settings: WindowSettings
    go: Callable[[str], bool]  # show a step's page; False (with the reason in the status bar) while it is locked
    show_status: Callable[[str, int], None]  # a message in the status bar for that many milliseconds
    resume_run: Callable[[int], None]
    verify_report: Callable[[str], None]  # File → Verify a report, with this PDF filled in
