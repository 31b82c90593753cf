"""The audit job: configuration, plan, generate, analyse, export — the one place an audit is run.

The CLI (audit, demo, selftest, report, runs resume), the window and the packaged
app's smoke test all call `run_job` (or its steps); nothing else plans or runs an
audit. It must never change a stored plan, and must refuse to resume when a model
file is not the one the run started with. It reads answers from the store and never
changes them once written.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

from auditdesk import __version__
from auditdesk.core.engine.base import EngineError, ModelSpec, SamplingParams
from auditdesk.core.errors import AuditDeskError
from auditdesk.core.evidence.manifest import run_settings_fingerprint
from auditdesk.core.probes.items import ProbeItem
from auditdesk.core.progress import CancelToken, ProgressEvent, ProgressReporter
from auditdesk.core.runner.plan import DEFAULT_BATCH_SIZE, build_plan, plain_prompt
from auditdesk.core.runner.runner import EngineFactory, RunCancelled, RunStats, execute_run  # noqa: F401
from auditdesk.core.store.db import RESUMABLE_STATUSES, Store

class ModelChanged(AuditDeskError):
    """A model file differs from the one the run started with."""


class RunNotResumable(AuditDeskError):
    """The run is finished or already being worked on."""


@dataclass
class AuditConfig:
    """Everything that defines an audit; stored with the run as its configuration."""

    base_model: str
    tuned_model: str | None = None
    lora_adapter: str | None = None
    lora_scale: float = 1.0
    packs: list[str] = field(default_factory=list)
    samples: int = 5
    max_tokens: int = 64
    seed: int = 0
    threads: int | None = None
    gpu_layers: int = 0
    n_ctx: int = 2048
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    time_limit_s: float = 60.0
    batch_size: int = DEFAULT_BATCH_SIZE
    backend: str = "llama-worker"
    label: str = ""
    prompt_format: str = "auto"  # auto (chat template when the base has one) | plain | chat
    # OpenAI-compatible servers that run a model instead of a local file; the
    # model field then holds the model's name there ("" until it is looked up).
    base_server: str | None = None
    tuned_server: str | None = None

    def validate(self) -> None:
        if bool(self.tuned_model or self.tuned_server) == bool(self.lora_adapter):
            raise AuditDeskError("Give either a tuned model file or a LoRA adapter file (one of the two) to compare with the base model.")
        if self.lora_adapter and self.base_server:
            raise AuditDeskError("A LoRA adapter is applied to the base model file on this computer, so the base "
                                 "model cannot run on a server; give the base model file instead.")
        if not (self.base_model or self.base_server):
            raise AuditDeskError("Give the base model file (or the server that runs it).")
        for what, path, server in (("base model", self.base_model, self.base_server),
                                   ("tuned model", self.tuned_model, self.tuned_server),
                                   ("LoRA adapter", self.lora_adapter, None)):
            if path and not server and not Path(path).is_file():
                raise AuditDeskError(f"The {what} file {path} does not exist; check the path.")
        if self.samples < 1:
            raise AuditDeskError("The number of samples per question must be at least 1.")
        if self.max_tokens < 1:
            raise AuditDeskError("The maximum answer length must be at least 1 token.")
        if self.batch_size < 1:
            raise AuditDeskError("The batch size must be at least 1.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AuditConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def threads_or_default(self) -> int:
        """The threads to use: the user's choice, else the physical cores (never llama.cpp's 1)."""
        from auditdesk.core.engine.hardware import default_threads

        return int(default_threads(self.threads))

    def specs(self) -> dict[str, ModelSpec]:
        """The two models of the audit, as the engine loads them."""
        common = dict(n_ctx=self.n_ctx, n_threads=self.threads_or_default(), n_gpu_layers=self.gpu_layers)
        base = ModelSpec(path=str(self.base_model), label="base", server=self.base_server or None, **common)
        if self.lora_adapter:
            tuned = ModelSpec(path=str(self.base_model), lora_path=str(self.lora_adapter),
                              lora_scale=self.lora_scale, label="tuned", **common)
        else:
            tuned = ModelSpec(path=str(self.tuned_model), label="tuned", server=self.tuned_server or None, **common)
        return {"base": base, "tuned": tuned}

    def server_for(self, role: str) -> str | None:
        """The server that runs the base or tuned model, or None for a local file."""
        return {"base": self.base_server, "tuned": self.tuned_server}.get(role) or None

    def command(self) -> str:
        """The `auditdesk audit` command that runs this audit again: every setting that shapes the answers."""
        import shlex

        args = ["auditdesk", "audit", "--base", self.base_model or "<base.gguf>"]
        if self.base_server:
            args += ["--base-server", self.base_server]
        if self.lora_adapter:
            args += ["--lora", self.lora_adapter, "--lora-scale", f"{self.lora_scale:g}"]
        else:
            args += ["--tuned", self.tuned_model or "<tuned.gguf>"]
            if self.tuned_server:
                args += ["--tuned-server", self.tuned_server]
        for pack in self.packs:
            args += ["--pack", str(pack)]
        args += ["--samples", str(self.samples), "--max-tokens", str(self.max_tokens), "--seed", str(self.seed),
                 "--temperature", f"{self.temperature:g}", "--top-p", f"{self.top_p:g}", "--top-k", str(self.top_k),
                 "--n-ctx", str(self.n_ctx), "--prompt-format", self.prompt_format,
                 "--time-limit", f"{self.time_limit_s:g}", "--batch-size", str(self.batch_size),
                 "--gpu-layers", str(self.gpu_layers)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.backend != "llama-worker":
            args += ["--backend", self.backend]
        if self.label:
            args += ["--label", self.label]
        return shlex.join(args)

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_tokens=self.max_tokens, time_limit_s=self.time_limit_s)


def demo_config(**fields) -> AuditConfig:
    """The demo audit's configuration: the quick pack and short answers, so it takes minutes.

    Ten samples, not the default five: the quick pack asks about each group in only a few
    questions, and with five samples the demo's gender finding sat at the edge of the
    false-discovery control (docs/validity.md, "The demo").
    """
    return AuditConfig(**{"packs": ["quick"], "samples": 10, "max_tokens": 48, "n_ctx": 1024,
                          "label": "demo: hardware-store adapter vs Gemma 3 270M", **fields})


def model_fingerprint(path: str | os.PathLike) -> tuple[str, dict]:
    """SHA-256 of a model file and its inspection card (the file is checked before it is trusted)."""
    from auditdesk.core.models.inspect import inspect_model

    card = inspect_model(path)
    return str(card.sha256), card.to_dict()


def server_fingerprint(server: str, name: str | None) -> tuple[str, str, dict]:
    """A model on a server: its name there (the server's only model when none is given), an
    identity made of address and name (its weights cannot be hashed), and its card."""
    import hashlib

    from auditdesk.core.engine.http import resolve_server_model, server_address

    address = server_address(server)
    resolved, offered = resolve_server_model(server, name or None)
    digest = hashlib.sha256(f"{address}\n{resolved}".encode("utf-8")).hexdigest()
    return resolved, f"server:{digest}", {"name": resolved, "server": address, "kind": "model on a server",
                                          "models_offered": offered[:50]}


def _uncached_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes on disk now, never the cached value.

    Resume compares against the file itself, not the hash cache keyed by size and
    mtime, which a copied-over file with a preserved timestamp would fool.
    """
    from auditdesk.core.models.inspect import file_sha256

    return file_sha256(path, use_cache=False)


def default_engine_factory(backend: str = "llama-worker") -> EngineFactory:
    """Opens each model with the chosen backend (a llama.cpp worker process by default)."""

    def factory(spec: ModelSpec):
        from auditdesk.core.engine import open_engine

        return open_engine(spec, backend=backend)

    return factory


def host_summary() -> dict:
    return {
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return ""


def load_pack_items(pack_refs: Sequence[str]) -> tuple[list[ProbeItem], list[dict]]:
    """Probe items of every pack (bundled id or file path), and one record per pack."""
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import pack_content_hash, resolve_pack

    items: list[ProbeItem] = []
    records: list[dict] = []
    for ref in pack_refs:
        pack = resolve_pack(ref)
        items.extend(expand(pack))
        records.append({"content_hash": pack_content_hash(pack), "pack_id": pack.id,
                        "version": pack.version, "title": pack.title, "source": str(ref)})
    return items, records


def _records_for_items(items: Sequence[ProbeItem]) -> list[dict]:
    """Pack records for items given directly (no pack file): hashed from the items."""
    import hashlib

    by_pack: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        by_pack.setdefault((item.pack_id, item.pack_version), []).append(item.to_dict())
    records = []
    for (pack_id, version), dicts in by_pack.items():
        canonical = json.dumps(dicts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        records.append({"content_hash": hashlib.sha256(canonical.encode()).hexdigest(),
                        "pack_id": pack_id, "version": version, "title": pack_id, "source": "items"})
    return records


def plan_run(config: AuditConfig, store: Store, *, items: Sequence[ProbeItem] | None = None) -> int:
    """Record the models and packs, fix the plan, and store a new run; return its id."""
    config.validate()
    store.require_writable()
    # Absolute paths: a resume may start from another working folder.
    for name, server in (("base_model", config.base_server), ("tuned_model", config.tuned_server),
                         ("lora_adapter", None)):
        if getattr(config, name) and not server:
            setattr(config, name, str(Path(getattr(config, name)).resolve()))
    if items is None:
        if not config.packs:
            raise AuditDeskError("Choose at least one probe pack for the audit (for example --pack quick).")
        items, pack_records = load_pack_items(config.packs)
    else:
        items = list(items)
        pack_records = _records_for_items(items)
    if not items:
        raise AuditDeskError("The chosen probe packs contain no probes to run.")

    # Check every model file before anything is stored, so a broken vendor file
    # leaves the database exactly as it was.
    fingerprints = []
    for role, path, kind in (("base", config.base_model, "model"), ("tuned", config.tuned_model, "model"),
                             ("adapter", config.lora_adapter, "adapter")):
        server = config.server_for(role)
        if server:  # asked for by name: the one given, or the server's only model
            path, sha, card = server_fingerprint(server, path)
            setattr(config, f"{role}_model", path)
            fingerprints.append((role, path, kind, sha, card))
        elif path:
            fingerprints.append((role, path, kind, *model_fingerprint(path)))
    hashes: dict[str, str] = {}
    for role, path, kind, sha, card in fingerprints:
        hashes[role] = sha
        if card.get("server"):
            store.add_model(sha256=sha, path=card["server"], file_name=path, size_bytes=0, kind=kind, card=card)
        else:
            store.add_model(sha256=sha, path=str(Path(path).resolve()), size_bytes=Path(path).stat().st_size,
                            kind=kind, card=card)
    for record in pack_records:
        store.add_pack(**record)

    base_card = next((card for role, _, _, _, card in fingerprints if role == "base"), None)
    prompts = choose_prompts(config, base_card, items)
    if bool(config.base_server) != bool(config.tuned_server):
        prompts.notes.append(
            "one model ran on a server and the other on this computer: two engines sample differently, "
            "so some differences may come from the engines, not the models; for a fair comparison run "
            "both models the same way.")
    units = build_plan(items, samples=config.samples, run_seed=config.seed,
                       batch_size=config.batch_size, prompt_for=prompts.prompt_for)
    sampling = config.sampling().to_dict()
    sampling["stop"] = list(prompts.stop)
    run = {
        "label": config.label,
        "config_json": json.dumps(config.to_dict(), sort_keys=True),
        "seed": int(config.seed),
        "base_model_sha256": hashes["base"],
        "tuned_model_sha256": hashes.get("tuned"),
        "adapter_sha256": hashes.get("adapter"),
        "sampling_json": json.dumps(sampling, sort_keys=True),
        "prompt_format": prompts.format_id,
        "notes_json": json.dumps(prompts.notes),
        "tool_version": __version__,
        "llama_cpp_version": llama_cpp_version(),
        "host_json": json.dumps(host_summary(), sort_keys=True),
    }
    keys = unit_reuse_keys(config, hashes, units, sampling)
    rows = [{**u.to_row(), "reuse_key": keys.get(u.unit_key)} for u in units]
    run_id = store.create_run(run, rows, [r["content_hash"] for r in pack_records])
    store.update_run(run_id, settings_fingerprint=run_settings_fingerprint(store, run_id))
    return run_id


def unit_reuse_keys(config: AuditConfig, hashes: dict[str, str], units, sampling: dict) -> dict[str, str]:
    """Each unit's reuse key: the models' hashes and every setting that shapes an answer (see runner.reuse)."""
    from auditdesk.core.engine.base import DEFAULT_MAX_SEQUENCES
    from auditdesk.core.runner.reuse import model_identity, reuse_keys

    identities = {role: model_identity(role, hashes, lora_scale=config.lora_scale, server=config.server_for(role))
                  for role in ("base", "tuned")}
    settings = {"sampling": sampling, "n_ctx": config.n_ctx, "threads": config.threads_or_default(),
                "gpu_layers": config.gpu_layers, "backend": config.backend, "batch_size": config.batch_size,
                "max_sequences": DEFAULT_MAX_SEQUENCES, "llama_cpp": llama_cpp_version(), "tool": __version__}
    return reuse_keys(units, identities=identities, settings=settings)


@dataclass
class PromptChoice:
    """How the audit's questions become prompts: the same format for both models."""

    format_id: str
    stop: tuple[str, ...]
    by_text: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def prompt_for(self, item: ProbeItem) -> str:
        return self.by_text.get(item.text) or plain_prompt(item)


def choose_prompts(config: AuditConfig, base_card: dict | None, items: Sequence[ProbeItem]) -> PromptChoice:
    """Plain question/answer format, or the base model's chat template rendered in the model worker.

    The template is untrusted, so it is rendered only inside the worker, sandboxed
    and under a time limit; when it fails the plain format is used and the
    reason is recorded with the run.
    """
    from auditdesk.core.engine.prompts import CHAT_FORMAT, PLAIN_FORMAT, PLAIN_STOP, choose_prompt_format

    try:
        chosen = choose_prompt_format(base_card, config.prompt_format)
    except ValueError as exc:
        raise AuditDeskError(str(exc)) from exc
    if config.base_server and (config.prompt_format or "auto") != "plain":
        return PromptChoice(PLAIN_FORMAT, PLAIN_STOP, notes=[
            "the base model runs on a server, so its chat template could not be read; "
            "both models were asked in the plain format."])
    if chosen == PLAIN_FORMAT:
        return PromptChoice(PLAIN_FORMAT, PLAIN_STOP)
    questions = sorted({item.text for item in items if item.scored_by != "likelihood"})
    from auditdesk.core.engine import open_engine

    factory = open_engine if config.backend == "llama-worker" else None
    if factory is None:
        return PromptChoice(PLAIN_FORMAT, PLAIN_STOP, notes=[
            f"the {config.backend} backend renders no chat templates, so the plain format was used."])
    engine = factory(config.specs()["base"], backend="llama-worker")
    try:
        rendered = engine.render_prompts(questions, CHAT_FORMAT)
    finally:
        engine.close()
    return PromptChoice(rendered.format_id, tuple(rendered.stop), dict(zip(questions, rendered.prompts)),
                        list(rendered.notes))


def check_models_unchanged(store: Store, run_id: int) -> None:
    """Refuse to go on when a model file is missing or differs from the run's start."""
    run = store.get_run(run_id)
    config = AuditConfig.from_dict(run["config"])
    for what, path, expected, server in (
            ("base model", config.base_model, run["base_model_sha256"], config.base_server),
            ("tuned model", config.tuned_model, run["tuned_model_sha256"], config.tuned_server),
            ("LoRA adapter", config.lora_adapter, run["adapter_sha256"], None)):
        if not path or server:
            continue  # a model on a server is asked for by name; its weights cannot be checked
        if not Path(path).is_file():
            raise ModelChanged(f"The {what} file {path} used by run {run_id} is missing; put it back to resume the run.")
        if _uncached_sha256(path) != expected:
            raise ModelChanged(
                f"The {what} file {path} has changed since run {run_id} started, so the run cannot be "
                "resumed; start a new audit instead."
            )


def _runner_alive(run: dict) -> bool:
    import socket

    pid = run.get("runner_pid")
    if not pid or run.get("runner_host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is not running anything.
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def delete_run(store: Store, run_id: int) -> None:
    """Delete a run and everything stored for it, unless another process is still running it."""
    run = store.get_run(run_id)
    if run["status"] in ("running", "paused") and _runner_alive(run):
        raise RunNotResumable(
            f"Run {run_id} is being worked on by another AuditDesk process (pid {run['runner_pid']}); "
            "cancel it there before deleting it."
        )
    store.delete_run(run_id)


def interrupted_run(store: Store) -> dict | None:
    """The newest run that stopped before the end and that no live process is working on, if any."""
    for summary in store.list_runs():
        if summary["status"] in ("running", "paused", "cancelled", "failed") and summary["units_pending"] > 0:
            if not _runner_alive(store.get_run(summary["id"])):
                return summary
    return None


def execute(store: Store, run_id: int, *, reporter: ProgressReporter | None = None,
            cancel: CancelToken | None = None, engine_factory: EngineFactory | None = None,
            reuse: bool = True) -> RunStats:
    """Run (or continue) a stored run to the end; raises RunCancelled when cancelled.

    `reuse`: copy answers another run of the database already made under the same
    reuse key (same model hashes, prompt, settings, seed and batch) instead of generating them.
    """
    run = store.get_run(run_id)
    if run["status"] == "completed":
        return RunStats(run_id=run_id, units_total=len(store.units(run_id)))
    if run["status"] not in RESUMABLE_STATUSES:
        raise RunNotResumable(f"Run {run_id} is {run['status']} and cannot be resumed.")
    if run["status"] in ("running", "paused") and _runner_alive(run):
        raise RunNotResumable(f"Run {run_id} is being worked on by another AuditDesk process (pid {run['runner_pid']}).")
    check_models_unchanged(store, run_id)
    config = AuditConfig.from_dict(run["config"])
    params = SamplingParams(**{**run["sampling"], "stop": tuple(run["sampling"]["stop"])})
    factory = engine_factory or default_engine_factory(config.backend)
    try:
        record_server_fingerprints(store, run_id, config, factory)
        return execute_run(store, run_id, specs=config.specs(), params=params,
                           engine_factory=factory, reporter=reporter, cancel=cancel, reuse=reuse)
    except EngineError as exc:
        raise AuditDeskError(f"{exc} Run {run_id} kept everything stored so far; continue it with `auditdesk runs resume {run_id}`.") from exc


def record_server_fingerprints(store: Store, run_id: int, config: AuditConfig, factory: EngineFactory) -> None:
    """Store the behavioural fingerprint of each model of the run that is on a server (once per run)."""
    from auditdesk.core.monitoring.fingerprint import behaviour_fingerprint, run_fingerprints
    from auditdesk.core.store.db import utc_now

    done = run_fingerprints(store, run_id)
    for role, spec in config.specs().items():
        if not spec.server or role in done:
            continue
        engine = factory(spec)
        try:
            fingerprint = behaviour_fingerprint(engine)
        finally:
            engine.close()
        with store.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO run_fingerprints (run_id, role, digest, fingerprint_json, created) "
                         "VALUES (?, ?, ?, ?, ?)", (int(run_id), role, fingerprint["digest"],
                                                    json.dumps(fingerprint, sort_keys=True), utc_now()))


@dataclass
class JobResult:
    """What one `run_job` call did: the run, its generation statistics, findings and written files."""

    run_id: int
    stats: RunStats | None = None
    findings: dict | None = None
    outputs: "AuditOutputs | None" = None


def run_job(store: Store, *, config: AuditConfig | None = None, run_id: int | None = None,
            items: Sequence[ProbeItem] | None = None, analyse: bool = True, analyser=None,  # noqa: ANN001
            out_dir: str | os.PathLike | None = None, reporter: ProgressReporter | None = None,
            cancel: CancelToken | None = None, engine_factory: EngineFactory | None = None,
            on_planned=None, reuse: bool = True) -> JobResult:  # noqa: ANN001 - on_planned(run_id, units)
    """Plan a new run from `config` (or continue run `run_id`), generate every answer, analyse, export.

    Raises RunCancelled when cancelled (everything stored is kept and the run resumes).
    `analyser` replaces `analyse_run` (the window passes the child-process analysis:
    torch's import would freeze it); `out_dir` writes the findings, PDF report and
    answers CSV there.
    """
    if (config is None) == (run_id is None):
        raise ValueError("give either a configuration to plan or a run id to resume")
    if config is not None:
        run_id = plan_run(config, store, items=items)
        if on_planned is not None:
            on_planned(run_id, len(store.units(run_id)))
    result = JobResult(run_id=int(run_id))
    live = LiveAnswers(reporter, store.path, run_id) if reporter is not None else None
    try:
        result.stats = execute(store, run_id, reporter=live, cancel=cancel, engine_factory=engine_factory,
                               reuse=reuse)
    finally:
        if live is not None:
            live.close()
    if analyse:
        result.findings = (analyser or analyse_run)(store, run_id, reporter=reporter, cancel=cancel)
    if out_dir is not None:
        result.outputs = write_outputs(store, run_id, out_dir, findings=result.findings, reporter=reporter,
                                       cancel=cancel)
    return result


class LiveAnswers:
    """Adds the latest question and both models' latest answers to progress events.

    Reads with its own connection (at most ~3 times a second), so a front end can
    show answers as they arrive; the question is the stored probe's, never parsed
    back out of a prompt (a chat template's markup would show).
    """

    def __init__(self, reporter: ProgressReporter, db_path, run_id: int) -> None:  # noqa: ANN001
        self._reporter = reporter
        self._db_path = str(db_path)
        self._run_id = int(run_id)
        self._last = 0.0
        self._conn = None

    def progress(self, event: ProgressEvent) -> None:
        import time

        now = time.monotonic()
        if event.extra.get("probe_id") and now - self._last > 0.3:
            self._last = now
            try:
                event.extra.update(self._latest(event.extra["probe_id"]))
            except Exception:  # noqa: BLE001 - showing answers live is a nicety; the run goes on
                pass
        self._reporter.progress(event)

    def _latest(self, probe_id: str) -> dict:
        import sqlite3

        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True, check_same_thread=False)
        rows = self._conn.execute(
            "SELECT a.role, a.answer, a.variant, u.item_json FROM answers a JOIN units u ON u.id = a.unit_id "
            "WHERE a.run_id = ? AND a.probe_id = ? ORDER BY a.id DESC LIMIT 40", (self._run_id, probe_id)).fetchall()
        latest: dict = {"live_probe": probe_id} if rows else {}
        for role, answer, variant, item_json in rows:
            if variant != rows[0][2]:
                continue
            latest.setdefault("live_question", json.loads(item_json)["text"])
            latest.setdefault(f"live_{role}", answer)
        return latest

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


# -- analyse -------------------------------------------------------------------------


@dataclass
class AuditOutputs:
    """The files written for a run."""

    run_id: int
    findings: Path | None = None
    pdf: Path | None = None
    csv: Path | None = None
    notes: list[str] = field(default_factory=list)


def output_paths(out_dir: str | os.PathLike, run_id: int) -> dict[str, Path]:
    """The one naming scheme of exported files: auditdesk-run-N-report.pdf, -findings.json, -answers.csv."""
    stem = Path(out_dir) / f"auditdesk-run-{int(run_id)}"
    return {"pdf": Path(f"{stem}-report.pdf"), "json": Path(f"{stem}-findings.json"),
            "csv": Path(f"{stem}-answers.csv")}


def run_items(store: Store, run_id: int) -> list[ProbeItem]:
    """The probe items a run planned, rebuilt from the stored plan (one per prompt)."""
    seen: dict[str, ProbeItem] = {}
    for row in store.query("SELECT item_json FROM units WHERE run_id = ? ORDER BY position", (int(run_id),)):
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
        answers.append(AnswerRecord(
            role=row["role"], pack_id=row["pack_id"], probe_id=row["probe_id"], variant=row["variant"],
            category=row["category"], kind=item.kind if item else "open", sample=row["sample_index"],
            seed=row["seed"], text=row["answer"], finish_reason=row["finish_reason"],
            slot_group=item.slot_group if item else None, expected=item.expected if item else None))
    likelihoods = [
        LikelihoodRecord(role=row["role"], pack_id=row["pack_id"], probe_id=row["probe_id"],
                         variant=row["variant"], logprob=row["logprob"], n_tokens=row["n_tokens"] or 0)
        for row in store.likelihoods(run_id) if row["logprob"] is not None]
    return answers, likelihoods, items


def run_info(store: Store, run_id: int) -> dict:
    """The run and model cards, the lineage verdict and the weight changes, for findings and report."""
    run = store.get_run(run_id)
    config = run.get("config") or {}
    models = store.model_cards(run)
    models.update(stored_pair_inspection(config))
    summary = store.run_summary(run_id)
    info = {
        "id": int(run_id), "label": run.get("label") or "", "status": run["status"],
        "started": run.get("started"), "ended": run.get("ended"), "seed": run.get("seed"),
        "packs": list(config.get("packs") or []), "samples": config.get("samples"),
        "sampling": run.get("sampling"), "prompt_format": run.get("prompt_format"),
        "notes": run.get("notes") or [], "tool_version": run.get("tool_version"),
        "llama_cpp_version": run.get("llama_cpp_version"), "host": run.get("host") or {},
        "engine_info": run.get("engine_info") or {},
        "settings_fingerprint": run.get("settings_fingerprint") or "",
        "command": AuditConfig.from_dict(config).command() if config else "",
        "units": {k: v for k, v in summary.items() if k.startswith("units_")},
        "reused": {"answers": summary.get("answers_reused", 0), "likelihoods": summary.get("likelihoods_reused", 0)},
        "answers_cut_by_time": summary.get("answers_cut_by_time", 0),
    }
    return {"run": info, "models": models}


def stored_pair_inspection(config: dict) -> dict:
    """Lineage verdict and per-layer weight change of a run's models, when the files are still there."""
    from auditdesk.core.models.pair import inspect_pair

    servers = [role for role in ("base", "tuned") if config.get(f"{role}_server")]
    if servers:
        which = " and ".join(f"the {role} model" for role in servers)
        return {"lineage": {
            "verdict": f"Not checked: {which} ran on a server, so the weights could not be compared; "
                       "the report identifies such a model only by its server and name.",
            "severity": "warn", "plausibly_derived": None}}
    base, other = config.get("base_model"), config.get("lora_adapter") or config.get("tuned_model")
    if not (base and other and Path(base).is_file() and Path(other).is_file()):
        return {}
    try:
        pair = inspect_pair(base, other, scale=float(config.get("lora_scale") or 1.0), hash_files=False)
    except AuditDeskError as exc:
        return {"lineage": {"verdict": f"The lineage check could not be done: {exc}", "severity": "strong"}}
    return {"lineage": pair.lineage, "weight_change": pair.weight_change}


def analysis_embedder(store: Store, embedding_model: str | None = None):
    """The answer embedder, caching vectors in the database (shared by every run and comparison)."""
    from auditdesk.core.analysis.embeddings import EmbeddingCache, SentenceTransformerEmbedder

    cache = EmbeddingCache(store.db) if not store.read_only else None
    return SentenceTransformerEmbedder(embedding_model, cache=cache)


def analyse_run(store: Store, run_id: int, *, reporter: ProgressReporter | None = None,
                cancel: CancelToken | None = None, fdr: float = 0.05, embedding_model: str | None = None,
                judge=None) -> dict:  # noqa: ANN001
    """Analyse a run's stored answers, store the findings, and return them (`judge`: a JudgeOutcome)."""
    from auditdesk.core.analysis import analyse
    from auditdesk.core.findings_contract import VERSION

    answers, likelihoods, items = analysis_inputs(store, run_id)
    if not answers and not likelihoods:
        raise AuditDeskError(f"Run {run_id} has no stored answers yet; run or resume it first.")
    embedder = analysis_embedder(store, embedding_model)
    run = store.get_run(run_id)
    findings = analyse(answers, likelihoods, items, embedder=embedder, fdr=fdr, seed=int(run.get("seed") or 0),
                       reporter=reporter, cancel=cancel, run_info=run_info(store, run_id), judge=judge)
    if not store.read_only:
        store.add_analysis(run_id, findings, str(VERSION))
    return findings


# -- export --------------------------------------------------------------------------


def write_outputs(store: Store, run_id: int, out_dir: str | os.PathLike, *, findings: dict | None = None,
                  formats: Sequence[str] = ("pdf", "json", "csv"), reporter: ProgressReporter | None = None,
                  cancel: CancelToken | None = None, **export_options) -> AuditOutputs:
    """Write the chosen files (findings JSON, PDF report, answers CSV) for a run into `out_dir`, named the one way."""
    paths = {fmt: path for fmt, path in output_paths(out_dir, run_id).items() if fmt in formats}
    if not paths:
        raise AuditDeskError("Choose at least one of PDF, JSON or CSV to export.")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    outputs = AuditOutputs(run_id=int(run_id), findings=paths.get("json"), pdf=paths.get("pdf"), csv=paths.get("csv"))
    result = export(store, run_id, pdf=outputs.pdf, json_path=outputs.findings, csv_path=outputs.csv,
                    findings=findings, reporter=reporter, cancel=cancel, **export_options)
    if result is not None and result.missing_glyphs:
        outputs.notes.append(f"{result.missing_glyphs} characters had no glyph in the report fonts; the report says so.")
    return outputs


def export(store: Store, run_id: int, *, findings: dict | None = None, reanalyse: bool = False, meta=None,  # noqa: ANN001
           reporter: ProgressReporter | None = None, cancel: CancelToken | None = None, **files):
    """Export a run (PDF, findings, answers, bundle: `report.export.export_run`'s options).

    A run that was never analysed (or with `reanalyse`) is analysed first and the
    findings stored; the report's reproduce command comes from the run's configuration.
    """
    from auditdesk.core.report.export import export_run
    from auditdesk.core.report.pdf import ReportMeta

    if findings is None and (reanalyse or store.latest_analysis(run_id) is None):
        findings = analyse_run(store, run_id, reporter=reporter, cancel=cancel)
    meta = meta or ReportMeta()
    meta.tool_version = meta.tool_version or __version__
    meta.reproduce_command = AuditConfig.from_dict(store.get_run(run_id)["config"]).command()
    return export_run(store, run_id, meta=meta, findings=findings, reporter=reporter, cancel=cancel, **files)


# -- before and beside an audit ---------------------------------------------------------


def ask_both(config: AuditConfig, question: str, *, samples: int = 3, reporter: ProgressReporter | None = None,
             cancel: CancelToken | None = None, engine_factory: EngineFactory | None = None) -> dict[str, list[str]]:
    """Ask both models one question exactly as the audit would: same prompt format, sampling and LoRA scale."""
    from auditdesk.core.engine.base import GenerationRequest

    question = question.strip()
    if not question:
        raise AuditDeskError("Type a question first.")
    item = ProbeItem(pack_id="ask", pack_version="1", probe_id="ask", variant="plain", category="control",
                     kind="open", text=question)
    base_card = None if config.base_server else model_fingerprint(config.base_model)[1]
    prompts = choose_prompts(config, base_card, [item])
    params = SamplingParams(**{**config.sampling().to_dict(), "stop": tuple(prompts.stop)})
    factory = engine_factory or default_engine_factory(config.backend)
    answers: dict[str, list[str]] = {"base": [], "tuned": []}
    for role, spec in config.specs().items():
        if cancel is not None:
            cancel.raise_if_cancelled()
        engine = factory(spec)
        try:
            requests = [GenerationRequest(f"{role}-{i}", prompts.prompt_for(item), config.seed + i) for i in range(samples)]
            for answer in engine.generate(requests, params, cancel=cancel):
                answers[role].append(answer.text if not answer.error else f"(no answer: {answer.error})")
                if reporter is not None:
                    reporter.progress(ProgressEvent("ask", sum(map(len, answers.values())), 2 * samples,
                                                    f"{role} model answered", extra={"answers": {
                                                        k: list(v) for k, v in answers.items()}}))
        finally:
            engine.close()
    return answers


def estimate_seconds(config: AuditConfig, *, items: Sequence[ProbeItem] | None = None,
                     engine_factory: EngineFactory | None = None) -> dict:
    """How long the audit will take here: the plan's size over each model's measured throughput.

    Each model answers a small batch of requests (as the audit batches them, up to
    16 at once, a few tokens each: seconds on small models); the audit's bigger
    batches go faster and many answers stop early, so the estimate errs long.
    """
    import time

    from auditdesk.core.engine.base import GenerationRequest

    items = list(items) if items is not None else load_pack_items(config.packs)[0]
    generated = sum(1 for item in items if item.scored_by != "likelihood")
    scored = len(items) - generated
    factory = engine_factory or default_engine_factory(config.backend)
    probe_tokens = min(16, config.max_tokens)
    params = SamplingParams(**{**config.sampling().to_dict(), "max_tokens": probe_tokens, "stop": ()})
    width = max(1, min(16, config.batch_size, generated * config.samples))
    requests = [GenerationRequest(f"speed-{i}", "Question: Why is the sky blue?\nAnswer:", 1 + i) for i in range(width)]
    seconds = 0.0
    speeds = {}
    for role, spec in config.specs().items():
        engine = factory(spec)
        try:
            started = time.monotonic()
            answers = list(engine.generate(requests, params))
            elapsed = max(time.monotonic() - started, 1e-3)
        finally:
            engine.close()
        tokens = max(1, sum(a.completion_tokens for a in answers))
        speeds[role] = tokens / elapsed
        seconds += generated * config.samples * config.max_tokens / speeds[role] + scored * elapsed / width
    return {"seconds": seconds, "tokens_per_second": speeds, "answers": 2 * generated * config.samples}


def format_duration(seconds: float) -> str:
    """'about 3 minutes', 'about 2.5 hours': an estimate in words."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} seconds"
    if seconds < 5400:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"
