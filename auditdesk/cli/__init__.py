"""The `auditdesk` command line: one module per command group.

Each module exposes `register(subparsers)` and keeps heavy imports inside the
functions that run a command, so `auditdesk --help` stays fast.
"""
