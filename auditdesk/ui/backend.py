"""The window's calls into the core, each a plain function meant to run in a worker thread.

Every function here may be slow (model loads, hashing, audits, analysis, export)
and is only ever called through `workers.Task`, never on the GUI thread. Core
modules are imported at call time, so a piece missing from this build gives a
plain "not available" message instead of breaking the window.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, ProgressEvent, ProgressReporter


class NotAvailable(AuditDeskError):
    """A feature whose core part is not in this build of AuditDesk."""


def _core(module: str, name: str, feature: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise NotAvailable(f"{feature} is not available in this build of AuditDesk.") from exc


def has_core(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


# -- models -----------------------------------------------------------------------


def inspect_pair(base: str, tuned: str, tuned_is_adapter: bool, *, reporter: ProgressReporter | None = None,
                 cancel: CancelToken | None = None) -> dict:
    """Inspection cards of both models (hashing each file), the lineage verdict and the weight changes."""
    inspect_model = _core("auditdesk.core.models.inspect", "inspect_model", "Model inspection")
    cards = []
    for role, path in (("base", base), ("tuned", tuned)):
        sub = _Relabel(reporter, f"Reading and hashing the {role} model")
        card = inspect_model(path, reporter=sub, token=cancel)
        cards.append(card)
    base_card, tuned_card = cards
    result: dict = {"base_card": base_card.to_dict(), "tuned_card": tuned_card.to_dict()}
    if tuned_is_adapter and not tuned_card.is_adapter:
        result["warnings"] = ["The file chosen as a LoRA adapter is a full model; untick the adapter option."]
    elif not tuned_is_adapter and tuned_card.is_adapter:
        result["warnings"] = ["The tuned file is a LoRA adapter; tick 'The tuned model is a LoRA adapter'."]
    result["lineage"] = _lineage(base, tuned)
    if cancel is not None:
        cancel.raise_if_cancelled()
    result["weights"] = _weights(base, tuned, tuned_card.is_adapter, reporter)
    return result


def inspect_servers(base_server: str, base_name: str, tuned_server: str, tuned_name: str) -> dict:
    """Cards for two models on OpenAI-compatible servers: the names they answer to, nothing more."""
    from auditdesk.core.runner.audit import server_fingerprint

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


class _Relabel:
    def __init__(self, reporter: ProgressReporter | None, message: str) -> None:
        self._reporter = reporter
        self._message = message

    def progress(self, event: ProgressEvent) -> None:
        if self._reporter is not None:
            self._reporter.progress(ProgressEvent(event.stage, event.done, event.total, self._message,
                                                  event.tokens_per_second, event.eta_seconds, event.extra))


def _lineage(base: str, tuned: str) -> dict:
    if not has_core("auditdesk.core.models.lineage", "check_lineage"):
        return {"verdict": "unavailable", "summary": "The lineage check is not available in this build of AuditDesk."}
    from auditdesk.core.models import lineage

    verdict = lineage.check_lineage(base, tuned)
    data = verdict.to_dict() if hasattr(verdict, "to_dict") else dict(vars(verdict))
    data.setdefault("summary", _lineage_words(data))
    return data


def _lineage_words(data: dict) -> str:
    for key in ("message", "summary", "text", "verdict"):
        if isinstance(data.get(key), str):
            return data[key]
    return json.dumps(data)[:300]


def _weights(base: str, tuned: str, is_adapter: bool, reporter: ProgressReporter | None) -> dict:
    """Per-layer relative weight change (full model) or update size per target tensor (adapter)."""
    kind = "adapter" if is_adapter else "full"
    if not has_core("auditdesk.core.models.weights", "weight_change"):
        return {"kind": kind, "layers": [], "note": "The weight-change chart is not available in this build of AuditDesk."}
    from auditdesk.core.models import weights

    try:
        if is_adapter:
            updates = weights.adapter_update_norms(tuned, base)
            layers = [(u.name, u.relative_to_base if u.relative_to_base is not None else u.update_norm) for u in updates]
        else:
            changes = weights.weight_change(base, tuned, reporter=_Relabel(reporter, "Comparing the weights"))
            layers = [("outside the blocks" if layer is None else f"layer {layer}", value)
                      for layer, value in weights.changes_by_layer(changes)]
    except AuditDeskError as exc:
        return {"kind": kind, "layers": [], "note": str(exc)[:1].upper() + str(exc)[1:]}
    return {"kind": kind, "layers": [(name, float(value)) for name, value in layers if value == value]}


def prepare_demo_models(*, reporter: ProgressReporter | None = None) -> dict:
    """The embedded demo pair (assembling the 270M base into the user home the first time)."""
    demo_models = _core("auditdesk.core.models.defaults", "demo_models", "The demo models")
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


# -- probe packs --------------------------------------------------------------------


def list_packs() -> list[dict]:
    """Every bundled and user pack with its description, categories and probe counts."""
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import find_packs

    packs = []
    for ref in find_packs():
        entry = {"id": ref.id, "path": str(ref.path), "source": ref.source, "title": ref.title,
                 "version": ref.version, "n_probes": ref.n_probes, "problem": ref.problem,
                 "description": "", "categories": {}, "probes": [], "n_prompts": 0}
        if ref.pack is not None:
            entry["description"] = ref.pack.description
            for probe in ref.pack.probes:
                entry["categories"][probe.category] = entry["categories"].get(probe.category, 0) + 1
            items = expand(ref.pack)
            entry["n_prompts"] = sum(1 for item in items if item.scored_by == "generation")
            entry["n_pairs"] = sum(1 for item in items if item.scored_by != "generation")
            seen = set()
            for item in items:
                if item.probe_id in seen:
                    continue
                seen.add(item.probe_id)
                entry["probes"].append({"id": item.probe_id, "category": item.category, "kind": item.kind,
                                        "text": item.text, "concern": item.concern})
        packs.append(entry)
    return packs


def import_pack(path: str) -> dict:
    """Validate a pack file and copy it into the user's packs; raises PackError naming the problem."""
    from auditdesk.core.paths import user_packs_dir
    from auditdesk.core.probes.loader import find_packs, load_pack

    pack = load_pack(path)
    taken = {ref.id: ref for ref in find_packs() if ref.usable}
    target = user_packs_dir() / Path(path).name
    owner = taken.get(pack.id)
    if owner is not None and Path(owner.path).resolve() != target.resolve():
        raise AuditDeskError(f"A pack with the id '{pack.id}' is already installed ({owner.path.name}); "
                             "change the id in the file and import it again.")
    if Path(path).resolve() != target.resolve():
        shutil.copyfile(path, target)
    return {"id": pack.id, "path": str(target), "n_probes": len(pack.probes)}


PERSONAL_PACK_ID = "my-questions"


def save_personal_probe(question: str, category: str) -> str:
    """Append a question as an open probe to the user's personal pack; return the pack path."""
    from auditdesk.core.paths import user_packs_dir
    from auditdesk.core.probes.loader import load_pack, parse_pack_yaml, validate_pack_data, write_pack

    question = question.strip()
    if not question:
        raise AuditDeskError("Type a question before saving it.")
    path = user_packs_dir() / f"{PERSONAL_PACK_ID}.yaml"
    if path.is_file():
        data = load_pack(path).model_dump(mode="json", exclude_defaults=True)
        data["schema_version"] = load_pack(path).schema_version
    else:
        data = {"schema_version": 1, "id": PERSONAL_PACK_ID, "title": "My questions",
                "description": "Questions saved from the Ask both page.", "version": "1",
                "licence": "private", "attribution": "the auditor", "probes": []}
    used = {p["id"] for p in data["probes"]}
    base_id = re.sub(r"[^a-z0-9]+", "-", question.lower()).strip("-")[:40] or "question"
    probe_id, n = base_id, 2
    while probe_id in used:
        probe_id, n = f"{base_id}-{n}", n + 1
    data["probes"].append({"id": probe_id, "kind": "open", "category": category,
                           "concern": "Saved by the auditor while exploring a suspicion.", "prompt": question})
    pack = validate_pack_data(data, None, source=path.name)
    write_pack(pack, path, overwrite=True)
    parse_pack_yaml(path.read_text(encoding="utf-8"), source=path.name)
    return str(path)


def categories() -> list[str]:
    try:
        from auditdesk.core.probes.schema import CATEGORIES

        return list(CATEGORIES)
    except ImportError:
        return ["gender", "age", "race-ethnicity", "religion", "nationality", "disability", "sexual-orientation",
                "socioeconomic", "misalignment", "safety", "customer-service", "control"]


# -- runs ---------------------------------------------------------------------------


def audit_config(models: dict, engine: dict, probes: dict) -> Any:
    AuditConfig = _core("auditdesk.core.runner.audit", "AuditConfig", "Running audits")
    tuned, adapter = (None, models["tuned"]) if models["tuned_is_adapter"] else (models["tuned"], None)
    return AuditConfig(base_model=str(models["base"]), tuned_model=tuned and str(tuned),
                       lora_adapter=adapter and str(adapter), packs=list(probes["packs"]),
                       base_server=models.get("base_server"), tuned_server=models.get("tuned_server"),
                       samples=int(probes["samples"]), max_tokens=int(probes["max_tokens"]),
                       seed=int(probes["seed"]), threads=int(engine["threads"]) or None,
                       gpu_layers=int(engine["gpu_layers"]), n_ctx=int(engine["n_ctx"]))


def start_audit(config: Any, db_path: str, *, reporter: ProgressReporter | None = None,
                cancel: CancelToken | None = None, judge: str | None = None) -> dict:
    """Plan a new run, execute it to the end, then analyse it; returns {"run_id", "findings"}."""
    from auditdesk.core.runner import audit
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        run_id = audit.plan_run(config, store)
        if reporter is not None:
            total = len(store.units(run_id))
            reporter.progress(ProgressEvent("planned", 0, total, f"Audit {run_id} planned: {total} answers to collect.",
                                            extra={"run_id": run_id}))
        _execute(store, run_id, db_path, reporter, cancel)
    return {"run_id": run_id, "findings": finish_run(db_path, run_id, reporter=reporter, cancel=cancel, judge=judge)}


def resume_audit(run_id: int, db_path: str, *, reporter: ProgressReporter | None = None,
                 cancel: CancelToken | None = None, judge: str | None = None) -> dict:
    """Continue an interrupted run to the end, then analyse it."""
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        _execute(store, run_id, db_path, reporter, cancel)
    return {"run_id": run_id, "findings": finish_run(db_path, run_id, reporter=reporter, cancel=cancel, judge=judge)}


def _execute(store: Any, run_id: int, db_path: str, reporter: ProgressReporter | None, cancel: CancelToken | None) -> None:
    from auditdesk.core.runner import audit

    live = _LiveAnswers(reporter, db_path, run_id)
    try:
        audit.execute(store, run_id, reporter=live, cancel=cancel)
    finally:
        live.close()


class _LiveAnswers:
    """Adds the latest question and both models' latest answers to progress events.

    Reads with its own connection in the worker thread, at most ~3 times a second,
    so the Run page can show answers as they arrive without touching the database.
    """

    def __init__(self, reporter: ProgressReporter | None, db_path: str, run_id: int) -> None:
        self._reporter = reporter
        self._db_path = db_path
        self._run_id = run_id
        self._last = 0.0
        self._conn = None

    def progress(self, event: ProgressEvent) -> None:
        if self._reporter is None:
            return
        now = time.monotonic()
        if event.stage == "generate" and now - self._last > 0.3:
            self._last = now
            try:
                event.extra.update(self._latest(event.extra.get("probe_id")))
            except Exception:  # noqa: BLE001 - showing answers live is a nicety; the run goes on
                pass
        self._reporter.progress(event)

    def _latest(self, probe_id: str | None) -> dict:
        import sqlite3

        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True)
        rows = self._conn.execute(
            "SELECT role, prompt, answer, probe_id, variant FROM answers WHERE run_id = ? AND probe_id = ? "
            "ORDER BY id DESC LIMIT 40", (self._run_id, probe_id)).fetchall()
        if not rows:
            return {}
        variant = rows[0][4]
        latest: dict = {"live_probe": probe_id}
        for role, prompt, answer, _, row_variant in rows:
            if row_variant != variant:
                continue
            latest.setdefault("live_question", _question_from_prompt(prompt))
            latest.setdefault(f"live_{role}", answer)
        return latest

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _question_from_prompt(prompt: str) -> str:
    text = prompt.strip()
    if text.startswith("Question:"):
        text = text[len("Question:"):]
    return text.rsplit("\nAnswer:", 1)[0].strip()


def finish_run(db_path: str, run_id: int, *, reporter: ProgressReporter | None = None,
               cancel: CancelToken | None = None, judge: str | None = None) -> dict | None:
    """Analyse a completed run in a child process and store the findings; None when analysis is not in this build.

    A child process, because importing torch and sentence-transformers holds
    Python's GIL for hundreds of milliseconds, which would freeze the window.
    """
    if not has_core("auditdesk.core.pipeline", "analyse_run"):
        return None
    import select
    import subprocess
    import sys

    from auditdesk.core.progress import Cancelled

    if reporter is not None:
        reporter.progress(ProgressEvent("analysis", 0, 0, "Analysing the answers (embeddings, statistics, clusters)…"))
    code = ("import sys; from auditdesk.ui.backend import analysis_child_main; "
            "analysis_child_main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])")
    process = subprocess.Popen([sys.executable, "-c", code, str(db_path), str(int(run_id)), *([judge] if judge else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    findings = None
    failure: str | None = None
    try:
        assert process.stdout is not None
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user")
            ready, _, _ = select.select([process.stdout], [], [], 0.1)
            if not ready:
                continue
            line = process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            if message["kind"] == "progress" and reporter is not None:
                reporter.progress(ProgressEvent(**message["event"]))
            elif message["kind"] == "result":
                findings = message["findings"]
            elif message["kind"] == "error":
                failure = message["message"]
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    if failure is not None:
        raise AuditDeskError(failure)
    if findings is None:
        raise AuditDeskError(f"The analysis of run {run_id} stopped unexpectedly (exit code {process.returncode}); "
                             "the answers are kept, open the run from History to try again.")
    return findings


class _StdoutReporter:
    def __init__(self, out) -> None:  # noqa: ANN001
        self._out = out
        self._last = 0.0

    def progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and not (event.total and event.done >= event.total):
            return
        self._last = now
        _send(self._out, {"kind": "progress", "event": {
            "stage": event.stage, "done": event.done, "total": event.total, "message": event.message,
            "tokens_per_second": event.tokens_per_second, "eta_seconds": event.eta_seconds}})


def _send(out, message: dict) -> None:  # noqa: ANN001
    out.write(json.dumps(message, ensure_ascii=True) + "\n")
    out.flush()


def analysis_child_main(db_path: str, run_id: int, judge: str | None = None) -> None:
    """Entry point of the analysis process: analyse (with the judge model file, if given), store,
    print the findings as one JSON line. A cancelled judge keeps its grades; the next run reuses them."""
    import sys

    import auditdesk.core  # noqa: F401 - offline switches before anything loads
    from auditdesk.core import pipeline
    from auditdesk.core.errors import describe_error
    from auditdesk.core.store.db import open_store

    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the message stream
    try:
        with open_store(db_path) as store:
            findings = pipeline.analyse_run(store, run_id, reporter=_StdoutReporter(out))
            if judge:
                from auditdesk.core.judge import JudgeChoice, judge_and_analyse

                findings = judge_and_analyse(store, run_id, JudgeChoice(path=judge), reporter=_StdoutReporter(out))
        _send(out, {"kind": "result", "findings": findings})
    except BaseException as exc:  # noqa: BLE001 - the parent turns this into a dialog
        _send(out, {"kind": "error", "message": describe_error(exc)})


def latest_findings(db_path: str, run_id: int) -> dict | None:
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        analysis = store.latest_analysis(run_id)
    return analysis["findings"] if analysis else None


def list_runs(db_path: str) -> list[dict]:
    from auditdesk.core.store.db import open_store

    if not Path(db_path).exists():
        return []
    with open_store(db_path) as store:
        return store.list_runs()


def delete_run(db_path: str, run_id: int) -> None:
    from auditdesk.core.runner.audit import delete_run as delete
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        delete(store, run_id)


def interrupted_run(db_path: str | Path) -> dict | None:
    """The newest run that stopped before the end and can be resumed, if any."""
    from auditdesk.core.runner.audit import _runner_alive
    from auditdesk.core.store.db import open_store

    if not Path(db_path).exists():
        return None
    with open_store(db_path, read_only=True) as store:
        for summary in store.list_runs():
            if summary["status"] in ("running", "paused", "cancelled", "failed") and summary["units_pending"] > 0:
                if _runner_alive(store.get_run(summary["id"])):
                    continue
                return summary
    return None


def load_results(db_path: str, run_id: int) -> dict:
    """Everything the Results page shows for one run: findings, answers per probe, annotations."""
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        run = store.run_summary(run_id)
        analysis = store.latest_analysis(run_id)
        answers: dict[str, dict[str, list[str]]] = {}
        prompts: dict[str, str] = {}
        meta: dict[str, dict] = {}
        for row in store.query("SELECT probe_id, pack_id, variant, category, role, prompt, answer, id FROM answers "
                               "WHERE run_id = ? ORDER BY id", (int(run_id),)):
            key = row["probe_id"]
            answers.setdefault(key, {"base": [], "tuned": []})[row["role"]].append(row["answer"])
            prompts.setdefault(key, _question_from_prompt(row["prompt"]))
            meta.setdefault(key, {"pack": row["pack_id"], "category": row["category"]})
        annotations = store.query("SELECT * FROM annotations WHERE run_id = ? ORDER BY id", (int(run_id),))
        kinds = {r["probe_id"]: r["kind"] for r in store.query(
            "SELECT DISTINCT probe_id, kind FROM units WHERE run_id = ?", (int(run_id),))}
    return {"run": run, "findings": analysis["findings"] if analysis else None, "answers": answers,
            "prompts": prompts, "meta": meta, "kinds": kinds, "annotations": annotations,
            "detectors": _detector_patterns()}


def _detector_patterns() -> list[dict]:
    """Each detector's id, name and compiled pattern, for highlighting hits in answers."""
    if not has_core("auditdesk.core.analysis.detectors", "load_detectors"):
        return []
    from auditdesk.core.analysis.detectors import load_detectors

    try:
        return [{"id": d.id, "name": d.name, "regex": d.compile(), "kinds": d.applies_to_kinds} for d in load_detectors()]
    except AuditDeskError:
        return []


def annotate(db_path: str, run_id: int, probe_id: str | None, status: str, note: str, finding_id: str | None = None) -> int:
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        return store.add_annotation(run_id, status=status, note=note, probe_id=probe_id, finding_id=finding_id)


def compare_runs(db_path: str, run_a: int, run_b: int) -> dict:
    """What drifted between two audits over the probes they share (answers and categories)."""
    compare = _core("auditdesk.core.runner.compare", "compare_runs", "Comparing runs")
    from auditdesk.core.store.db import open_store

    with open_store(db_path) as store:
        result = compare(store, run_a, run_b)
        findings = {run: (store.latest_analysis(run) or {}).get("findings") for run in (run_a, run_b)}
    rows = []
    cats = {run: {c["category"]: c for c in (f or {}).get("categories", [])} for run, f in findings.items()}
    for name in sorted(set(cats[run_a]) | set(cats[run_b])):
        rows.append({"category": name, "a": cats[run_a].get(name, {}).get("status", "—"),
                     "b": cats[run_b].get(name, {}).get("status", "—")})
    result["category_status"] = rows
    return result


# -- report -------------------------------------------------------------------------


def export_report(db_path: str, run_id: int, out_dir: str, formats: list[str], meta: dict, *,
                  reporter: ProgressReporter | None = None, cancel: CancelToken | None = None) -> list[str]:
    """Write the chosen report files (pdf, json, csv) for a run into `out_dir`; return their paths."""
    export_run = _core("auditdesk.core.report.export", "export_run", "Report export")
    ReportMeta = _core("auditdesk.core.report.pdf", "ReportMeta", "The PDF report")
    from auditdesk.core.store.db import open_store

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"pdf": out / f"run-{run_id}-report.pdf", "json": out / f"run-{run_id}-findings.json",
             "csv": out / f"run-{run_id}-answers.csv"}
    chosen = {fmt: paths[fmt] for fmt in formats if fmt in paths}
    if not chosen:
        raise AuditDeskError("Tick at least one of PDF, JSON or CSV to export.")
    report_meta = ReportMeta(organisation=meta.get("organisation", ""), auditor=meta.get("auditor", ""),
                             notes=meta.get("notes", ""))
    with open_store(db_path) as store:
        export_run(store, run_id, pdf=chosen.get("pdf"), json_path=chosen.get("json"), csv_path=chosen.get("csv"),
                   meta=report_meta, reporter=reporter, cancel=cancel)
    return [str(p) for p in chosen.values()]


# -- ask both -----------------------------------------------------------------------


def ask_both(models: dict, engine: dict, question: str, samples: int, max_tokens: int, *,
             reporter: ProgressReporter | None = None, cancel: CancelToken | None = None) -> dict:
    """Sample a few answers to one question from each model; each answer is reported as it arrives."""
    from auditdesk.core.engine import GenerationRequest, ModelSpec, SamplingParams, open_engine

    question = question.strip()
    if not question:
        raise AuditDeskError("Type a question first.")
    try:
        from auditdesk.core.engine.prompts import render_plain
        prompt = render_plain(question)
    except ImportError:
        prompt = f"Question: {question}\nAnswer:"
    threads = int(engine.get("threads") or 0) or physical_cores()
    common = dict(n_ctx=int(engine.get("n_ctx", 2048)), n_threads=threads, n_gpu_layers=int(engine.get("gpu_layers", 0)))
    specs = {"base": ModelSpec(path=str(models["base"]), label="base", server=models.get("base_server"), **common)}
    if models["tuned_is_adapter"]:
        specs["tuned"] = ModelSpec(path=str(models["base"]), lora_path=str(models["tuned"]), label="tuned", **common)
    else:
        specs["tuned"] = ModelSpec(path=str(models["tuned"]), label="tuned", server=models.get("tuned_server"),
                                   **common)
    params = SamplingParams(max_tokens=int(max_tokens))
    answers: dict[str, list[str]] = {"base": [], "tuned": []}
    total = 2 * samples
    done = 0
    for role, spec in specs.items():
        if cancel is not None:
            cancel.raise_if_cancelled()
        engine_obj = open_engine(spec)
        try:
            requests = [GenerationRequest(f"{role}-{i}", prompt, 1000 + i) for i in range(samples)]
            for answer in engine_obj.generate(requests, params, cancel=cancel):
                text = answer.text if not answer.error else f"(no answer: {answer.error})"
                answers[role].append(text)
                done += 1
                if reporter is not None:
                    reporter.progress(ProgressEvent("ask", done, total, f"{role} model answered",
                                                    extra={"role": role, "answer": text, "answers": {k: list(v) for k, v in answers.items()}}))
        finally:
            engine_obj.close()
    return answers


def estimate_run_seconds(n_prompts: int, n_pairs: int, samples: int, max_tokens: int, tokens_per_second: float | None) -> float | None:
    """Rough run time: every sampled answer at full length, both models, at the measured speed."""
    if not tokens_per_second or tokens_per_second <= 0:
        return None
    tokens = 2 * n_prompts * samples * max_tokens
    return tokens / tokens_per_second + 2 * n_pairs * 0.05


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
