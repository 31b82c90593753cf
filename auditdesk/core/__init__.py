"""The AuditDesk engine: models, probes, runs, analysis and reports.

Nothing under `auditdesk.core` may import Qt (PySide6): the window, the command
line and the tests are all clients of this package. Importing it must stay cheap
and must never touch the network, so the offline switches are set here first.
"""

from auditdesk.core.offline import enforce_offline

enforce_offline()
