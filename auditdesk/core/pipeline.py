"""From a finished run to the files an officer hands on: analysis, findings, PDF, CSV.

Shared by `auditdesk audit`, `auditdesk demo`, `auditdesk report` and the window,
so they all produce the same documents from the same stored evidence. It reads
answers from the store and never changes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from auditdesk import __version__
from auditdesk.core.errors import AuditDeskError
from auditdesk.core.probes.items import ProbeItem
from auditdesk.core.progress import CancelToken, ProgressReporter
from auditdesk.core.store.db import Store

FINDINGS_FORMAT_VERSION = "2"


@dataclass
class AuditOutputs:
    """The files written for a run."""

    run_id: int
    findings: Path | None = None
    pdf: Path | None = None
    csv: Path | None = None
    notes: list[str] = field(default_factory=list)


def run_items(store: Store, run_id: int) -> list[ProbeItem]:
    """The probe items a run planned, rebuilt from the stored plan (one per prompt)."""
    seen: dict[str, ProbeItem] = {}
    for row in store.query(
        "SELECT item_json FROM units WHERE run_id = ? ORDER BY position", (int(run_id),)
    ):
        data = json.loads(row["item_json"])
        data["tags"] = tuple(data.get("tags") or ())
        item = ProbeItem(**data)
        seen.setdefault(item.key, item)
    return list(seen.values())


def analysis_inputs(store: Store, run_id: int):
    """Answers and likelihood scores of a run as the analysis's plain records."""
    from auditdesk.core.analysis.records import AnswerRecord, LikelihoodRecord

    items = run_items(store, run_id)
    by_key = {item.key: item for item in items}
    answers = []
    for row in store.answers(run_id):
        item = by_key.get(f"{row['pack_id']}/{row['probe_id']}/{row['variant']}")
        answers.append(
            AnswerRecord(
                role=row["role"], pack_id=row["pack_id"], probe_id=row["probe_id"], variant=row["variant"],
                category=row["category"], kind=item.kind if item else "open", sample=row["sample_index"],
                seed=row["seed"], text=row["answer"], finish_reason=row["finish_reason"],
                slot_group=item.slot_group if item else None, expected=item.expected if item else None,
            )
        )
    likelihoods = [
        LikelihoodRecord(role=row["role"], pack_id=row["pack_id"], probe_id=row["probe_id"],
                         variant=row["variant"], logprob=row["logprob"], n_tokens=row["n_tokens"] or 0)
        for row in store.likelihoods(run_id)
        if row["logprob"] is not None
    ]
    return answers, likelihoods, items


def run_info(store: Store, run_id: int) -> dict:
    """The run and model cards, the lineage verdict and the weight changes, for findings and report."""
    run = store.get_run(run_id)
    config = run.get("config") or {}
    models = store.model_cards(run)
    models.update(_lineage_and_weights(config))
    summary = store.run_summary(run_id)
    info = {
        "id": int(run_id),
        "label": run.get("label") or "",
        "status": run["status"],
        "started": run.get("started"),
        "ended": run.get("ended"),
        "seed": run.get("seed"),
        "packs": list(config.get("packs") or []),
        "samples": config.get("samples"),
        "sampling": run.get("sampling"),
        "prompt_format": run.get("prompt_format"),
        "notes": run.get("notes") or [],
        "tool_version": run.get("tool_version"),
        "llama_cpp_version": run.get("llama_cpp_version"),
        "host": run.get("host") or {},
        "engine_info": run.get("engine_info") or {},
        "units": {k: v for k, v in summary.items() if k.startswith("units_")},
    }
    return {"run": info, "models": models}


def _lineage_and_weights(config: dict) -> dict:
    """Lineage verdict and per-layer weight change, when the model files are still there."""
    from auditdesk.core.models.lineage import check_lineage
    from auditdesk.core.models.weights import layer_summary

    base = config.get("base_model")
    adapter = config.get("lora_adapter")
    tuned = config.get("tuned_model")
    other = adapter or tuned
    result: dict = {}
    servers = [role for role in ("base", "tuned") if config.get(f"{role}_server")]
    if servers:
        which = " and ".join(f"the {role} model" for role in servers)
        result["lineage"] = {
            "verdict": f"Not checked: {which} ran on a server, so the weights could not be compared; "
                       "the report identifies such a model only by its server and name.",
            "severity": "warn", "plausibly_derived": None}
        return result
    if not (base and other and Path(base).is_file() and Path(other).is_file()):
        return result
    try:
        result["lineage"] = check_lineage(base, other).to_dict()
    except AuditDeskError as exc:
        result["lineage"] = {"verdict": f"The lineage check could not be done: {exc}", "severity": "strong"}
    try:
        result["weight_change"] = layer_summary(
            base, tuned=None if adapter else tuned, adapter=adapter, scale=float(config.get("lora_scale") or 1.0))
    except (AuditDeskError, ValueError, OSError) as exc:
        result["weight_change"] = {"kind": "error", "layers": [], "note": str(exc)}
    return result


def analyse_run(store: Store, run_id: int, *, reporter: ProgressReporter | None = None,
                cancel: CancelToken | None = None, fdr: float = 0.05, embedding_model: str | None = None,
                judge=None) -> dict:
    """Analyse a run's stored answers, store the findings, and return them (`judge`: a JudgeOutcome)."""
    from auditdesk.core.analysis import analyse
    from auditdesk.core.analysis.embeddings import EmbeddingCache, SentenceTransformerEmbedder

    answers, likelihoods, items = analysis_inputs(store, run_id)
    if not answers and not likelihoods:
        raise AuditDeskError(f"Run {run_id} has no stored answers yet; run or resume it first.")
    cache = EmbeddingCache(store.db) if not store.read_only else None
    embedder = SentenceTransformerEmbedder(embedding_model, cache=cache)
    run = store.get_run(run_id)
    findings = analyse(answers, likelihoods, items, embedder=embedder, fdr=fdr, seed=int(run.get("seed") or 0),
                       reporter=reporter, cancel=cancel, run_info=run_info(store, run_id), judge=judge)
    if not store.read_only:
        store.add_analysis(run_id, findings, FINDINGS_FORMAT_VERSION)
    return findings


def write_outputs(store: Store, run_id: int, out_dir: str | os.PathLike, *, findings: dict | None = None,
                  organisation: str = "", auditor: str = "", reporter: ProgressReporter | None = None,
                  cancel: CancelToken | None = None) -> AuditOutputs:
    """Write findings JSON, the PDF report and the answers CSV for a run into `out_dir`.

    A run that was never analysed is analysed first (and the findings stored).
    """
    from auditdesk.core.report.export import export_run
    from auditdesk.core.report.pdf import ReportMeta

    if findings is None and store.latest_analysis(run_id) is None:
        findings = analyse_run(store, run_id, reporter=reporter, cancel=cancel)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"auditdesk-run-{int(run_id)}"
    outputs = AuditOutputs(run_id=int(run_id), findings=out / f"{stem}-findings.json",
                           pdf=out / f"{stem}-report.pdf", csv=out / f"{stem}-answers.csv")
    meta = ReportMeta(organisation=organisation, auditor=auditor, tool_version=__version__)
    result = export_run(store, run_id, pdf=outputs.pdf, json_path=outputs.findings, csv_path=outputs.csv,
                        meta=meta, findings=findings, reporter=reporter, cancel=cancel)
    if result is not None and result.missing_glyphs:
        outputs.notes.append(f"{result.missing_glyphs} characters had no glyph in the report fonts; the report says so.")
    return outputs


def finish_run(run_id: int, *, db_path: str | os.PathLike | None, out_dir: str | os.PathLike,
               reporter: ProgressReporter | None = None, cancel: CancelToken | None = None,
               organisation: str = "", auditor: str = "") -> AuditOutputs:
    """Analyse a run and write its findings, report and CSV."""
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        findings = analyse_run(store, run_id, reporter=reporter, cancel=cancel)
        return write_outputs(store, run_id, out_dir, findings=findings, organisation=organisation,
                             auditor=auditor, reporter=reporter, cancel=cancel)
