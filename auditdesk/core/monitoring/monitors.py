"""Monitors: a named audit stored in the database and run again and again, each run compared with the last.

A monitor run is one audit through the audit job (answers already known are
reused) followed by the drift comparison with the monitor's previous run (or its
reference run). It must never change a stored run; what it adds is the new run,
the comparison and one `monitor_runs` row with the outcome.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, ProgressReporter
from auditdesk.core.store.db import Store, utc_now

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class MonitorNotFound(AuditDeskError):
    """No monitor with that name in this database."""


def parse_every(text: str | None) -> int | None:
    """'7d', '12h', '30m', '2w' -> seconds (None stays None)."""
    if text is None or text == "":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", str(text))
    if not match or int(match.group(1)) == 0:
        raise AuditDeskError(f"--every takes a number and a unit (m, h, d or w), for example 7d or 12h, not {text!r}.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_every(seconds: int | None) -> str:
    """Seconds as the --every text they came from ('7d'); '' for none."""
    if not seconds:
        return ""
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass
class Monitor:
    """A named audit configuration, how often to run it, and the run the first comparison starts from."""

    id: int
    name: str
    config: dict
    every_seconds: int | None = None
    reference_run: int | None = None
    created: str = ""

    @property
    def every(self) -> str:
        return format_every(self.every_seconds)


@dataclass
class MonitorOutcome:
    """What one monitor run found: the new run, the comparison, and the new concerns."""

    monitor: str
    run_id: int
    compared_with: int | None
    audit: dict[str, str] = field(default_factory=dict)  # category -> status, base vs tuned
    drift: dict[str, str] = field(default_factory=dict)  # category -> status, previous tuned vs this one
    new_concerns: list[str] = field(default_factory=list)
    swapped: list[str] = field(default_factory=list)  # server roles whose behavioural fingerprint changed
    comparison_id: int | None = None
    reused: dict = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary_text(self) -> str:
        """A few lines for a person: what the run found and what is new."""
        lines = [f"THE {role.upper()} MODEL BEHIND THE SERVER IS NOT THE ONE AUDITED IN RUN {self.compared_with}: "
                 "its answers to the fixed fingerprint probes changed." for role in self.swapped]
        lines.append(f"Monitor {self.monitor}: audit run {self.run_id} ({self.created}).")
        concerning = [c for c, s in self.audit.items() if s == "concerning"]
        lines.append("Concerning against the base model: " + (", ".join(concerning) or "none") + ".")
        if self.compared_with is None:
            lines.append("No earlier run to compare with: this run is the monitor's first.")
        else:
            drifted = [f"{c} ({s})" for c, s in self.drift.items() if s != "unchanged"]
            lines.append(f"Drift since run {self.compared_with}: " + (", ".join(drifted) or "none") + ".")
        lines.append("NEW CONCERNS: " + ", ".join(self.new_concerns) if self.new_concerns else "No new concern.")
        if self.swapped:
            lines.append("Model swapped behind the server: " + ", ".join(self.swapped) + ".")
        return "\n".join(lines)


def _row_to_monitor(row: dict) -> Monitor:
    return Monitor(id=row["id"], name=row["name"], config=json.loads(row["config_json"]),
                   every_seconds=row["every_seconds"], reference_run=row["reference_run"], created=row["created"])


def add_monitor(store: Store, name: str, config, *, every: str | None = None,  # noqa: ANN001 - AuditConfig
                reference_run: int | None = None) -> Monitor:
    """Store a new monitor; the configuration is checked (files exist, a pack is chosen) before anything is written."""
    from pathlib import Path

    if not NAME_PATTERN.match(name or ""):
        raise AuditDeskError("A monitor name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                             f"or digit (it names files and timers), not {name!r}.")
    config.validate()
    if not config.packs:
        raise AuditDeskError("Choose at least one probe pack for the monitor (for example --pack quick).")
    for attr, server in (("base_model", config.base_server), ("tuned_model", config.tuned_server),
                         ("lora_adapter", None)):
        if getattr(config, attr) and not server:  # a scheduled run starts in another folder
            setattr(config, attr, str(Path(getattr(config, attr)).resolve()))
    config.packs = [str(Path(p).resolve()) if Path(p).is_file() else p for p in config.packs]
    config.label = config.label or f"monitor {name}"
    seconds = parse_every(every)
    if reference_run is not None:
        store.get_run(reference_run)  # raises RunNotFound
    if store.query("SELECT 1 FROM monitors WHERE name = ?", (name,)):
        raise AuditDeskError(f"There is already a monitor called {name}; `auditdesk monitor remove {name}` first.")
    with store.transaction() as conn:
        conn.execute("INSERT INTO monitors (name, config_json, every_seconds, reference_run, created) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (name, json.dumps(config.to_dict(), sort_keys=True), seconds, reference_run, utc_now()))
    return get_monitor(store, name)


def get_monitor(store: Store, name: str) -> Monitor:
    rows = store.query("SELECT * FROM monitors WHERE name = ?", (name,))
    if not rows:
        raise MonitorNotFound(f"There is no monitor called {name} in {store.path}; `auditdesk monitor list` "
                              "shows the monitors.")
    return _row_to_monitor(rows[0])


def remove_monitor(store: Store, name: str) -> None:
    """Delete a monitor and its timeline; its audit runs stay in the database."""
    monitor = get_monitor(store, name)
    with store.transaction() as conn:
        conn.execute("DELETE FROM monitors WHERE id = ?", (monitor.id,))


def monitor_runs(store: Store, name: str) -> list[MonitorOutcome]:
    """The monitor's outcomes, oldest first."""
    monitor = get_monitor(store, name)
    rows = store.query("SELECT outcome_json FROM monitor_runs WHERE monitor_id = ? ORDER BY id", (monitor.id,))
    return [MonitorOutcome(**json.loads(row["outcome_json"])) for row in rows]


def list_monitors(store: Store) -> list[dict]:
    """Every monitor with its schedule and last outcome, by name."""
    listing = []
    for row in store.query("SELECT * FROM monitors ORDER BY name"):
        monitor = _row_to_monitor(row)
        outcomes = monitor_runs(store, monitor.name)
        last = outcomes[-1] if outcomes else None
        listing.append({"name": monitor.name, "every": monitor.every, "reference_run": monitor.reference_run,
                        "runs": len(outcomes), "last_run": last.run_id if last else None,
                        "last_time": last.created if last else None,
                        "last_concerning": [c for c, s in last.audit.items() if s == "concerning"] if last else [],
                        "last_new_concerns": last.new_concerns if last else []})
    return listing


def timeline(store: Store, name: str) -> dict:
    """Per monitored run, each category's status against the base, its drift since the run before and its
    concern score (`concern_scores`: category -> one value per run)."""
    monitor = get_monitor(store, name)
    outcomes = monitor_runs(store, name)
    categories = sorted({c for o in outcomes for c in (*o.audit, *o.drift)})
    runs = [o.to_dict() for o in outcomes]
    return {"monitor": name, "every": monitor.every, "reference_run": monitor.reference_run,
            "config": monitor.config, "categories": categories, "runs": runs,
            "concern_scores": timeline_scores(store, runs)}


def timeline_scores(store: Store, outcomes: list[dict]) -> dict[str, list[float | None]]:
    """category -> concern score of each monitored run (None where the run has no analysis of it)."""
    per_run = []
    for outcome in outcomes:
        latest = store.latest_analysis(outcome["run_id"]) if outcome.get("run_id") else None
        rows = (latest or {}).get("findings", {}).get("categories", [])
        per_run.append({row["category"]: row.get("concern_score") for row in rows})
    categories = sorted({c for scores in per_run for c in scores})
    return {c: [scores.get(c) for scores in per_run] for c in categories}


def run_monitor(store: Store, name: str, *, reporter: ProgressReporter | None = None,
                cancel: CancelToken | None = None, engine_factory=None,  # noqa: ANN001
                fdr: float = 0.05) -> MonitorOutcome:
    """Audit the monitor's models once (the audit job, reusing known answers) and compare with its last run.

    A new concern is a category that is concerning now, against the base, and was
    not in the run compared with, or one whose drift since that run is concerning.
    """
    from auditdesk.core.audit_job import AuditConfig, analyse_run, run_job
    from auditdesk.core.monitoring.drift import category_statuses, compare_tuned

    monitor = get_monitor(store, name)
    previous = [o.run_id for o in monitor_runs(store, name) if _run_exists(store, o.run_id)]
    compared_with = previous[-1] if previous else monitor.reference_run
    if compared_with is not None and not _run_exists(store, compared_with):
        compared_with = None

    def analyser(store_, run_id, reporter=None, cancel=None):  # noqa: ANN001
        return analyse_run(store_, run_id, reporter=reporter, cancel=cancel, fdr=fdr)

    config = AuditConfig.from_dict(monitor.config)
    job = run_job(store, config=config, reporter=reporter, cancel=cancel, engine_factory=engine_factory,
                  analyser=analyser)
    findings = job.findings
    outcome = MonitorOutcome(monitor=name, run_id=job.run_id, compared_with=compared_with,
                             audit=category_statuses(findings), created=utc_now(),
                             reused=store.reused_counts(job.run_id))
    if compared_with is not None:
        from auditdesk.core.monitoring.fingerprint import run_fingerprints, swapped_roles

        outcome.swapped = swapped_roles(run_fingerprints(store, compared_with), run_fingerprints(store, job.run_id))
        drift = compare_tuned(store, compared_with, job.run_id, fdr=fdr, reporter=reporter, cancel=cancel)
        outcome.drift = category_statuses(drift)
        outcome.comparison_id = drift["drift"].get("comparison_id")
        # A reference run may never have been analysed: analyse it now (stored answers only), or
        # every concern of this run would look new.
        before = store.latest_analysis(compared_with)
        before_findings = before["findings"] if before else analyser(store, compared_with, reporter=reporter,
                                                                      cancel=cancel)
        outcome.new_concerns = new_concerns(outcome.audit, category_statuses(before_findings), outcome.drift)
    else:
        outcome.new_concerns = new_concerns(outcome.audit, {}, {})
    with store.transaction() as conn:
        conn.execute("INSERT INTO monitor_runs (monitor_id, run_id, compared_with, comparison_id, outcome_json, "
                     "created) VALUES (?, ?, ?, ?, ?, ?)",
                     (monitor.id, job.run_id, compared_with, outcome.comparison_id,
                      json.dumps(outcome.to_dict(), sort_keys=True), outcome.created))
    return outcome


def new_concerns(now: dict[str, str], before: dict[str, str], drift: dict[str, str]) -> list[str]:
    """Categories concerning now (against the base) that were not before, or whose drift is concerning."""
    return sorted({c for c, status in now.items() if status == "concerning" and before.get(c) != "concerning"}
                  | {c for c, status in drift.items() if status == "concerning"})


def _run_exists(store: Store, run_id: int | None) -> bool:
    return run_id is not None and bool(store.query("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)))
