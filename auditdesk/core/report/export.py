"""Exports one stored audit run: reads the findings and answers from the store, writes PDF/JSON/CSV/bundle.

This is the only report module that knows the database; it never writes to it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.evidence.bundle import write_bundle
from auditdesk.core.evidence.frameworks import load_mapping
from auditdesk.core.evidence.manifest import (MANIFEST_NAME, build_manifest, locate_pack_file, manifest_bytes,
                                              run_pack_records)
from auditdesk.core.evidence.signing import AUDITOR_FIELD, SigningRequest, prepare_report_pdf, sign_report_bytes
from auditdesk.core.report.atomic import atomic_path
from auditdesk.core.report.csv_export import write_csv, write_json
from auditdesk.core.report.dates import export_time
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
               reporter=None, cancel=None, signing: SigningRequest | None = None, bundle: Path | None = None,
               frameworks: str | Path | None = None) -> ReportResult | None:
    """Write whichever of the PDF, findings JSON, answers CSV and evidence bundle were asked for.

    A PDF always carries the evidence manifest (attached and in Appendix B) and
    the framework mapping; with `signing` it is signed by the auditor before it
    gets its name. Returns the PDF result.
    """
    meta = meta or ReportMeta()
    findings = complete_from_store(store, run_id, findings) if findings is not None else stored_findings(store, run_id)
    answers = store.answers(run_id)
    if not meta.annotations:
        meta.annotations = stored_annotations(store, run_id)
    if not meta.reproduce_command:
        meta.reproduce_command = str((findings.get("run") or {}).get("command") or "")
    if pdf is None and bundle is None:
        if json_path is not None:
            write_json(findings, json_path)
        if csv_path is not None:
            write_csv(answers, csv_path, cancel=cancel)
        return None
    mapping = load_mapping(frameworks)  # a bad mapping file is refused before anything is written
    stem = f"auditdesk-run-{int(run_id)}"
    with tempfile.TemporaryDirectory(prefix="auditdesk-export-") as scratch:
        scratch = Path(scratch)
        # The manifest names the files as the officer receives them: the names asked for, or the standard ones.
        json_out = json_path or scratch / f"{stem}-findings.json"
        csv_out = csv_path or scratch / f"{stem}-answers.csv"
        write_json(findings, json_out)
        write_csv(answers, csv_out, cancel=cancel)
        moment = export_time()
        packs = [locate_pack_file(record) for record in run_pack_records(store, run_id)]
        manifest = build_manifest(store, run_id, findings_path=Path(json_out), answers_path=Path(csv_out),
                                  findings=findings, created=moment.isoformat(timespec="seconds"), pack_files=packs)
        meta.exported = moment.isoformat()
        meta.manifest = manifest
        meta.frameworks = mapping
        if signing is not None:
            meta.signer_name = signing.signer_name or signing.key.common_name
            meta.signer_role = signing.signer_role or "Auditor"
            meta.signer_fingerprint = signing.key.fingerprint
            if not meta.auditor:
                meta.auditor = meta.signer_name
        raw = scratch / "layout.pdf"
        result = build_report(findings, answers, raw, meta=meta, reporter=reporter, cancel=cancel)
        prepared = scratch / "prepared.pdf"
        prepare_report_pdf(raw, prepared, manifest=manifest_bytes(manifest), manifest_name=MANIFEST_NAME,
                           signature_boxes=result.signature_boxes)
        data = prepared.read_bytes()
        if signing is not None:
            data = sign_report_bytes(data, signing.key, field=AUDITOR_FIELD, signer_name=meta.signer_name,
                                     signer_role=meta.signer_role)
        pdf_out = Path(pdf) if pdf is not None else scratch / f"{stem}-report.pdf"
        with atomic_path(pdf_out) as tmp:
            tmp.write_bytes(data)
        result.path = pdf_out
        if bundle is not None:
            write_bundle(Path(bundle), pdf=pdf_out, findings=Path(json_out), answers=Path(csv_out), packs=packs,
                         manifest=manifest)
    return result

