"""The audit being prepared in the window: chosen models, packs, settings and the current run.

Pages read and change this one object and listen to its signals, so no page owns
domain state. It holds plain data only and never calls core work itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from auditdesk.core.audit_job import AuditConfig

# One set of defaults for every front end: the audit job's (5 samples, seed 0, ...).
DEFAULTS = AuditConfig(base_model="")


@dataclass
class ModelChoice:
    """The two models of the audit and what inspecting them found."""

    base: Path | None = None  # with a server: the model's name there
    tuned: Path | None = None
    tuned_is_adapter: bool = False
    base_server: str | None = None  # an OpenAI-compatible server that runs the model
    tuned_server: str | None = None
    base_card: dict | None = None
    tuned_card: dict | None = None
    lineage: dict | None = None
    weights: dict | None = None  # {"kind": "full"|"adapter", "layers": [(name, value), ...]}

    @property
    def chosen(self) -> bool:
        return self.base is not None and self.tuned is not None

    @property
    def inspected(self) -> bool:
        return self.chosen and self.base_card is not None and self.tuned_card is not None


@dataclass
class EngineSettings:
    threads: int = 0  # 0: the machine's physical cores
    n_ctx: int = DEFAULTS.n_ctx
    gpu_layers: int = DEFAULTS.gpu_layers


@dataclass
class ProbeChoice:
    packs: list[str] = field(default_factory=list)  # pack ids or pack file paths
    samples: int = DEFAULTS.samples
    max_tokens: int = DEFAULTS.max_tokens
    seed: int = DEFAULTS.seed


class AuditSession(QObject):
    """Shared state of the window; each change emits the matching signal."""

    models_changed = Signal()
    probes_changed = Signal()
    run_changed = Signal()
    findings_changed = Signal()
    packs_changed = Signal()  # a pack was saved outside the Probes page (Ask both); the page re-reads them

    def __init__(self, db_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.models = ModelChoice()
        self.engine = EngineSettings()
        self.probes = ProbeChoice()
        self.run_id: int | None = None
        self.run_status: str | None = None
        self.findings: dict | None = None

    # -- models ------------------------------------------------------------
    def set_models(self, base: Path | None, tuned: Path | None, tuned_is_adapter: bool,
                   base_server: str | None = None, tuned_server: str | None = None) -> None:
        m = self.models
        wanted = (base, tuned, tuned_is_adapter, base_server, tuned_server)
        if wanted == (m.base, m.tuned, m.tuned_is_adapter, m.base_server, m.tuned_server):
            return
        self.models = ModelChoice(base=base, tuned=tuned, tuned_is_adapter=tuned_is_adapter,
                                  base_server=base_server, tuned_server=tuned_server)
        self.models_changed.emit()

    def set_inspection(self, result: dict) -> None:
        self.models.base_card = result.get("base_card")
        self.models.tuned_card = result.get("tuned_card")
        self.models.lineage = result.get("lineage")
        self.models.weights = result.get("weights")
        self.models_changed.emit()

    def audit_config(self, *, packs: list[str] | None = None) -> AuditConfig:
        """The audit job's configuration for what the window has chosen (Ask both uses it too)."""
        m, engine, probes = self.models, self.engine, self.probes
        tuned, adapter = (None, m.tuned) if m.tuned_is_adapter else (m.tuned, None)
        return AuditConfig(base_model=str(m.base or ""), tuned_model=tuned and str(tuned),
                           lora_adapter=adapter and str(adapter), base_server=m.base_server,
                           tuned_server=m.tuned_server, packs=list(probes.packs if packs is None else packs),
                           samples=probes.samples, max_tokens=probes.max_tokens, seed=probes.seed,
                           threads=engine.threads or None, gpu_layers=engine.gpu_layers, n_ctx=engine.n_ctx)

    # -- probes ------------------------------------------------------------
    def set_packs(self, packs: list[str]) -> None:
        if packs != self.probes.packs:
            self.probes.packs = list(packs)
            self.probes_changed.emit()

    def set_sampling(self, samples: int, max_tokens: int, seed: int | None = None) -> None:
        self.probes.samples = samples
        self.probes.max_tokens = max_tokens
        if seed is not None:
            self.probes.seed = seed
        self.probes_changed.emit()

    # -- run and findings ------------------------------------------------------
    def set_run(self, run_id: int | None, status: str | None) -> None:
        self.run_id = run_id
        self.run_status = status
        if status != "completed":
            self.findings = None
        self.run_changed.emit()

    def set_findings(self, findings: dict | None) -> None:
        self.findings = findings
        self.findings_changed.emit()

    # -- which steps are open ----------------------------------------------------
    @property
    def models_ready(self) -> bool:
        return self.models.inspected

    @property
    def probes_ready(self) -> bool:
        return self.models_ready and bool(self.probes.packs)

    @property
    def run_ready(self) -> bool:
        return self.run_id is not None and self.run_status == "completed"
