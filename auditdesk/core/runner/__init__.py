"""Audit runs: a fixed plan of work units executed through an engine into the store (see core/audit_job.py)."""
