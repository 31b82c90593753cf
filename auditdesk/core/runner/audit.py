"""The audit job in one call: record models and packs, plan the run, execute it, resume it.

This is what the CLI, the window and the demo call. It must never change a
stored plan, and must refuse to resume when a model file is not the one the
run started with.
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
from auditdesk.core.probes.items import ProbeItem
from auditdesk.core.progress import CancelToken, ProgressReporter
from auditdesk.core.runner.plan import DEFAULT_BATCH_SIZE, build_plan, plain_prompt
from auditdesk.core.runner.runner import EngineFactory, RunStats, execute_run
from auditdesk.core.store.db import RESUMABLE_STATUSES, Store, open_store

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

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_tokens=self.max_tokens, time_limit_s=self.time_limit_s)


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
    return store.create_run(run, [u.to_row() for u in units], [r["content_hash"] for r in pack_records])


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


def execute(store: Store, run_id: int, *, reporter: ProgressReporter | None = None,
            cancel: CancelToken | None = None, engine_factory: EngineFactory | None = None) -> RunStats:
    """Run (or continue) a stored run to the end; raises RunCancelled when cancelled."""
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
        return execute_run(store, run_id, specs=config.specs(), params=params,
                           engine_factory=factory, reporter=reporter, cancel=cancel)
    except EngineError as exc:
        raise AuditDeskError(f"{exc} Run {run_id} kept everything stored so far; continue it with `auditdesk runs resume {run_id}`.") from exc


def run_audit(config: AuditConfig, *, db_path: str | os.PathLike | None = None,
              reporter: ProgressReporter | None = None, cancel: CancelToken | None = None,
              items: Sequence[ProbeItem] | None = None,
              engine_factory: EngineFactory | None = None) -> int:
    """Plan and run a whole audit; return the run id (raises RunCancelled if cancelled)."""
    with open_store(db_path) as store:
        run_id = plan_run(config, store, items=items)
        execute(store, run_id, reporter=reporter, cancel=cancel, engine_factory=engine_factory)
    return run_id


def resume_run(run_id: int, *, db_path: str | os.PathLike | None = None,
               reporter: ProgressReporter | None = None, cancel: CancelToken | None = None,
               engine_factory: EngineFactory | None = None) -> int:
    """Continue an interrupted run to the end; return its id."""
    with open_store(db_path) as store:
        execute(store, run_id, reporter=reporter, cancel=cancel, engine_factory=engine_factory)
    return run_id
