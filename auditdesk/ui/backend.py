"""The window's calls into the core, each a plain function meant to run in a worker thread.

Every function here may be slow (model loads, hashing, audits, analysis, export)
and is only ever called through `workers.Task`, never on the GUI thread. The
domain logic lives in core (mostly `core/audit_job.py`); these only open the
store at the window's database path and shape results for the pages.
"""

from __future__ import annotations

import os
from pathlib import Path

from auditdesk.core import audit_job
from auditdesk.core.errors import AuditDeskError
from auditdesk.core.probes.user_packs import import_pack, list_packs, save_personal_probe  # noqa: F401
from auditdesk.core.progress import CancelToken, ProgressEvent, ProgressReporter
from auditdesk.core.store.db import open_store

# -- models -----------------------------------------------------------------------


def inspect_pair(base: str, tuned: str, tuned_is_adapter: bool, *, reporter: ProgressReporter | None = None,
                 cancel: CancelToken | None = None) -> dict:
    """Inspection cards of both models (hashing each file), the lineage verdict and the weight changes."""
    from auditdesk.core.models.pair import inspect_pair as inspect

    pair = inspect(base, tuned, reporter=reporter, cancel=cancel)
    result: dict = {"base_card": pair.base_card.to_dict(), "tuned_card": pair.other_card.to_dict(),
                    "lineage": {**pair.lineage, "summary": pair.verdict.verdict}}
    if tuned_is_adapter and not pair.other_card.is_adapter:
        result["warnings"] = ["The file chosen as a LoRA adapter is a full model; untick the adapter option."]
    elif not tuned_is_adapter and pair.other_card.is_adapter:
        result["warnings"] = ["The tuned file is a LoRA adapter; tick 'The tuned model is a LoRA adapter'."]
    weights = pair.weight_change
    result["weights"] = {**weights, "layers": [(f"layer {row['layer']}", row["relative_change"])
                                               for row in weights["layers"]]}
    return result


def inspect_servers(base_server: str, base_name: str, tuned_server: str, tuned_name: str) -> dict:
    """Cards for two models on OpenAI-compatible servers: the names they answer to, nothing more."""
    from auditdesk.core.audit_job import server_fingerprint

    result: dict = {"weights": {"kind": "server", "layers": [], "note": "The weights of a model on a server cannot be read."}}
    for role, server, name in (("base", base_server, base_name), ("tuned", tuned_server, tuned_name)):
        resolved, _, card = server_fingerprint(server, name.strip() or None)
        card["warnings"] = [f"Runs on {card['server']}; its file cannot be hashed or inspected from here."]
        result[f"{role}_card"] = card
        result[f"{role}_name"] = resolved
    result["lineage"] = {"verdict": "not checked", "summary": (
        "Not checked: the models run on servers, so their weights cannot be compared. The report "
        "identifies them by server and name.")}
    return result


def prepare_demo_models(*, reporter: ProgressReporter | None = None) -> dict:
    """The embedded demo pair (assembling the 270M base into the user home the first time)."""
    from auditdesk.core.models.defaults import demo_models

    if reporter is not None:
        reporter.progress(ProgressEvent("demo", 0, 1, "Preparing the demo models (the first time takes a few seconds)…"))
    demo = demo_models()
    return {"base": str(demo.base), "adapter": str(demo.adapter), "data_card": str(demo.data_card)}


def gpu_support() -> tuple[bool, str]:
    """Whether GPU layers can be used, and why not in plain words.

    Asked in a child process: loading llama.cpp's shared library holds the GIL
    long enough to freeze the window, and the window itself never runs a model.
    """
    import subprocess
    import sys

    code = "from auditdesk.core.engine.hardware import gpu_offload_supported as g; print(int(g()))"
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False, "The GPU check did not answer, so everything runs on the processor."
    answer = result.stdout.strip()
    if answer == "1":
        return True, "This llama.cpp build can put model layers on the GPU."
    if answer == "0":
        return False, ("This llama.cpp build has no GPU support, so everything runs on the processor. "
                       "See the README for installing a GPU build.")
    return False, "llama.cpp could not be loaded, so GPU offload cannot be used."


def physical_cores() -> int:
    try:
        from auditdesk.core.engine.hardware import physical_cores as cores

        return int(cores())
    except Exception:  # noqa: BLE001
        return max(1, (os.cpu_count() or 2) // 2)


# -- runs ---------------------------------------------------------------------------


def run_audit(db_path: str, *, config: audit_job.AuditConfig | None = None, run_id: int | None = None,
              reporter: ProgressReporter | None = None, cancel: CancelToken | None = None,
              judge: str | None = None) -> dict:
    """Plan a new run (or continue one), collect every answer, then analyse it; {"run_id", "findings"}.

    `judge`: a judge model file; the analysis child then grades the answers with it and
    analyses them again with its grades (a cancelled judge keeps its grades for next time).
    """
    from functools import partial

    from auditdesk.core.engine.analysis_process import analyse_in_child_process

    def planned(new_run: int, units: int) -> None:
        if reporter is not None:
            reporter.progress(ProgressEvent("planned", 0, units, f"Audit {new_run} planned: {units} answers to collect.",
                                            extra={"run_id": new_run}))

    with open_store(db_path) as store:
        result = audit_job.run_job(store, config=config, run_id=run_id, reporter=reporter, cancel=cancel,
                                   analyser=partial(analyse_in_child_process, judge=judge), on_planned=planned)
    return {"run_id": result.run_id, "findings": result.findings}


def estimate(config: audit_job.AuditConfig) -> dict:
    """How long the audit would take here (a short measurement of both models' speed)."""
    return audit_job.estimate_seconds(config)


def latest_findings(db_path: str, run_id: int) -> dict | None:
    with open_store(db_path) as store:
        analysis = store.latest_analysis(run_id)
    return analysis["findings"] if analysis else None


def list_runs(db_path: str) -> list[dict]:
    if not Path(db_path).exists():
        return []
    with open_store(db_path) as store:
        return store.list_runs()


def delete_run(db_path: str, run_id: int) -> None:
    with open_store(db_path) as store:
        audit_job.delete_run(store, run_id)


def interrupted_run(db_path: str | Path) -> dict | None:
    """The newest run that stopped before the end and can be resumed, if any."""
    if not Path(db_path).exists():
        return None
    with open_store(db_path, read_only=True) as store:
        return audit_job.interrupted_run(store)


def load_results(db_path: str, run_id: int) -> dict:
    """Everything the Results page shows for one run: findings, answers per probe, annotations."""
    from auditdesk.core.analysis.detectors import load_detectors

    with open_store(db_path) as store:
        analysis = store.latest_analysis(run_id)
        result = {"run": store.run_summary(run_id), "findings": analysis["findings"] if analysis else None,
                  **store.answers_by_probe(run_id), "annotations": store.annotations(run_id)}
    try:
        result["detectors"] = [{"id": d.id, "name": d.name, "regex": d.compile(), "kinds": d.applies_to_kinds}
                               for d in load_detectors()]
    except AuditDeskError:
        result["detectors"] = []
    return result


def annotate(db_path: str, run_id: int, probe_id: str | None, status: str, note: str, finding_id: str | None = None) -> int:
    with open_store(db_path) as store:
        return store.add_annotation(run_id, status=status, note=note, probe_id=probe_id, finding_id=finding_id)


def compare_runs(db_path: str, run_a: int, run_b: int, *, reporter: ProgressReporter | None = None,
                 cancel: CancelToken | None = None) -> dict:
    """Drift between two audits: run A's tuned answers against run B's, with the audit's tests and FDR control."""
    from auditdesk.core.monitoring.drift import compare_tuned, drift_lines

    with open_store(db_path) as store:
        findings = compare_tuned(store, run_a, run_b, reporter=reporter, cancel=cancel)
    return {"run_a": run_a, "run_b": run_b, "lines": drift_lines(findings)}


# -- report -------------------------------------------------------------------------


def export_report(db_path: str, run_id: int, out_dir: str, formats: list[str], meta: dict, *,
                  reporter: ProgressReporter | None = None, cancel: CancelToken | None = None) -> list[str]:
    """Write the chosen report files (pdf, json, csv) for a run into `out_dir`; return their paths."""
    from auditdesk.core.report.pdf import ReportMeta

    report_meta = ReportMeta(organisation=meta.get("organisation", ""), auditor=meta.get("auditor", ""),
                             notes=meta.get("notes", ""))
    with open_store(db_path) as store:
        outputs = audit_job.write_outputs(store, run_id, out_dir, formats=formats, meta=report_meta,
                                          reporter=reporter, cancel=cancel)
    return [str(p) for p in (outputs.pdf, outputs.findings, outputs.csv) if p is not None]


# -- ask both -----------------------------------------------------------------------


def ask_both(config: audit_job.AuditConfig, question: str, samples: int, *,
             reporter: ProgressReporter | None = None, cancel: CancelToken | None = None) -> dict:
    """Sample a few answers to one question from each model, exactly as the audit would ask it."""
    return audit_job.ask_both(config, question, samples=samples, reporter=reporter, cancel=cancel)


# -- signatures and verification ------------------------------------------------------


def sign_report_file(pdf: str, key_path: str, passphrase: str, signer_name: str = "", signer_role: str = "") -> str:
    """Add a signature to a report in place (the passphrase is used here and dropped); return the path."""
    from auditdesk.core.evidence.signing import load_signing_key, sign_report

    key = load_signing_key(key_path, passphrase)
    return str(sign_report(pdf, key, signer_name=signer_name, signer_role=signer_role))


def verify_report_file(pdf: str, evidence: str = ""):
    """Every check on a report (and its evidence folder or bundle, when given), as core returns them."""
    from auditdesk.core.evidence.verify import verify_report

    return verify_report(pdf, evidence=evidence or None)


def monitoring_overview(db_path: str) -> dict:
    """Every monitor with its last result, and each monitor's timeline (for the Monitoring page)."""
    from auditdesk.core.monitoring.monitors import list_monitors, timeline

    if not Path(db_path).exists():
        return {"monitors": [], "timelines": {}}
    with open_store(db_path) as store:
        monitors = list_monitors(store)
        return {"monitors": monitors, "timelines": {m["name"]: timeline(store, m["name"]) for m in monitors}}


def new_monitor_concerns(db_path: str | Path) -> list[dict]:
    """The last run of each monitor when it found a new concern or a swapped server model."""
    from auditdesk.core.monitoring.monitors import list_monitors, monitor_runs

    if not Path(db_path).exists():
        return []
    with open_store(db_path, read_only=True) as store:
        found = []
        for monitor in list_monitors(store):
            outcomes = monitor_runs(store, monitor["name"])
            if outcomes and (outcomes[-1].new_concerns or outcomes[-1].swapped):
                found.append(outcomes[-1].to_dict())
        return found
