"""Exports one stored audit run: reads the findings and answers from the store, writes PDF/JSON/CSV.

This is the only report module that knows the database; it never writes to it.
"""

from __future__ import annotations

from pathlib import Path

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.report.csv_export import write_csv, write_json
from auditdesk.core.report.pdf import ReportMeta, ReportResult, build_report


def stored_findings(store, run_id: int) -> dict:
    """The latest findings document of a run, with model cards and run facts filled in from the store."""
    analysis = store.latest_analysis(run_id)
    if analysis is None:
        raise AuditDeskError(
            f"audit run {run_id} has not been analysed yet; finish it with `auditdesk runs resume {run_id}` "
            "so its findings exist, then export the report.")
    findings = dict(analysis["findings"])
    return complete_from_store(store, run_id, findings)


def complete_from_store(store, run_id: int, findings: dict) -> dict:
    """Fill the model cards and run card the analysis left empty from what the store recorded."""
    run = store.get_run(run_id)
    findings = dict(findings)
    models = dict(findings.get("models") or {})
    for role, stored in store.model_cards(run).items():
        card = dict(models.get(role) or {})
        if not card.get("sha256"):
            models[role] = {**stored, **card}
    findings["models"] = models
    card = dict(findings.get("run") or {})
    summary = store.run_summary(run_id)
    for key in ("id", "status", "started", "ended", "packs", "samples", "seed"):
        if card.get(key) in (None, "", []) and summary.get(key) not in (None, ""):
            card[key] = summary[key]
    for key in ("sampling", "engine_info", "host", "tool_version", "llama_cpp_version", "prompt_format"):
        if card.get(key) in (None, "", {}) and run.get(key) not in (None, ""):
            card[key] = run[key]
    findings["run"] = card
    return findings


def stored_annotations(store, run_id: int) -> list[dict]:
    """The analyst's confirmed/dismissed notes for a run, oldest first."""
    rows = store.query("SELECT * FROM annotations WHERE run_id = ? ORDER BY id", (int(run_id),))
    return [{"probe_id": r.get("probe_id") or r.get("finding_id"), "status": r.get("status"),
             "note": r.get("note"), "created_at": r.get("created")} for r in rows]


def export_run(store, run_id: int, *, pdf: Path | None = None, json_path: Path | None = None,
               csv_path: Path | None = None, meta: ReportMeta | None = None, findings: dict | None = None,
               reporter=None, cancel=None) -> ReportResult | None:
    """Write whichever of the PDF, findings JSON and answers CSV were asked for; returns the PDF result."""
    meta = meta or ReportMeta()
    findings = complete_from_store(store, run_id, findings) if findings is not None else stored_findings(store, run_id)
    answers = store.answers(run_id)
    if not meta.annotations:
        meta.annotations = stored_annotations(store, run_id)
    if not meta.reproduce_command:
        meta.reproduce_command = _reproduce_command(store, run_id)
    if json_path is not None:
        write_json(findings, json_path)
    if csv_path is not None:
        write_csv(answers, csv_path, cancel=cancel)
    if pdf is not None:
        return build_report(findings, answers, pdf, meta=meta, reporter=reporter, cancel=cancel)
    return None


def _reproduce_command(store, run_id: int) -> str:
    run = store.get_run(run_id)
    config = run.get("config") or {}
    parts = ["auditdesk audit", f"--base {config.get('base_model') or '<base.gguf>'}"]
    if config.get("lora_adapter"):
        parts.append(f"--lora {config['lora_adapter']}")
    elif config.get("tuned_model"):
        parts.append(f"--tuned {config['tuned_model']}")
    for pack in config.get("packs") or []:
        parts.append(f"--pack {pack.get('id', pack) if isinstance(pack, dict) else pack}")
    if config.get("samples"):
        parts.append(f"--samples {config['samples']}")
    parts.append(f"--seed {run.get('seed')}")
    return " ".join(str(p) for p in parts)
