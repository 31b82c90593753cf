"""The AuditDesk desktop window (PySide6): one client of `auditdesk.core`.

Nothing under `auditdesk.core` may import this package; long work here always
runs in `workers.Task`, never on the GUI thread.
"""
