"""Monitoring: drift between audits, monitors that re-audit a model over time, and their schedules.

Everything here goes through the one audit job (`core.audit_job`); nothing here
imports Qt or generates answers itself.
"""
