"""Step 1, Models: choose the base and the tuned model, see both inspection cards and the lineage.

Inspection (which hashes whole files) and preparing the demo models run in
workers; this page only shows what they return and keeps the engine settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.widgets.charts import WeightChangeChart
from auditdesk.ui.widgets.common import help_label, section_label, show_error
from auditdesk.ui.workers import Task

CARD_FIELDS = [
    ("Name", lambda c: c.get("name") or c.get("file_name")),
    ("Kind", lambda c: c.get("kind")),
    ("Architecture", lambda c: c.get("architecture")),
    ("Size", lambda c: None if c.get("server") else _size(c)),
    ("Quantisation", lambda c: c.get("quantisation") or c.get("file_type")),
    ("Context length", lambda c: c.get("context_length")),
    ("Chat template", lambda c: "not readable on a server" if c.get("server") else
     ("yes — " + str(c.get("chat_template_sha256"))[:12]) if c.get("chat_template_present") else "none"),
    ("SHA-256", lambda c: c.get("sha256")),
]


def _size(card: dict) -> str:
    mb = (card.get("file_size") or 0) / 1e6
    label = card.get("size_label")
    params = card.get("parameter_count") or 0
    parts = [f"{mb:,.1f} MB" if mb >= 1 else f"{mb * 1000:,.0f} KB"]
    if label:
        parts.append(str(label))
    elif params:
        parts.append(f"{params / 1e6:,.1f} M parameters")
    return ", ".join(parts)


class ModelCardView(QGroupBox):
    """One model's inspection card; also a drop target for a .gguf file."""

    def __init__(self, title: str, on_drop, parent: QWidget | None = None) -> None:  # noqa: ANN001
        super().__init__(title, parent)
        self.setAcceptDrops(True)
        self._on_drop = on_drop
        self.form = QFormLayout(self)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.values: dict[str, QLabel] = {}
        for name, _ in CARD_FIELDS:
            label = QLabel("—")
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            label.setAccessibleName(f"{title}: {name}")
            self.values[name] = label
            self.form.addRow(f"{name}:", label)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.form.addRow(self.warning)
        self.setToolTip("Drop a .gguf file here")

    def show_card(self, card: dict | None) -> None:
        for name, getter in CARD_FIELDS:
            value = getter(card) if card else None
            text = "—" if value in (None, "") else str(value)
            if name == "SHA-256" and card and len(text) == 64:
                text = text[:32] + "\n" + text[32:]
            self.values[name].setText(text)
        self.warning.setText("\n".join(card.get("warnings", [])) if card else "")

    def dragEnterEvent(self, event) -> None:  # noqa: N802, ANN001
        if _gguf_from(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802, ANN001
        path = _gguf_from(event.mimeData())
        if path:
            event.acceptProposedAction()
            self._on_drop(path)


def _gguf_from(mime) -> str | None:  # noqa: ANN001
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and url.toLocalFile().lower().endswith(".gguf"):
            return url.toLocalFile()
    return None


class ModelsPage(QScrollArea):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget()
        self.setWidget(body)
        layout = QVBoxLayout(body)

        layout.addWidget(section_label("Step 1 — Which models are compared?"))
        layout.addWidget(help_label(
            "Choose the vendor's base model and the fine-tuned model they delivered (GGUF files), "
            "or drop the files onto the cards below. AuditDesk reads and fingerprints both files; nothing leaves this "
            "computer unless you choose models that run on a server."))

        grid = QGridLayout()
        self.base_edit = QLineEdit()
        self.base_edit.setReadOnly(True)
        self.base_edit.setPlaceholderText("No base model chosen")
        self.base_edit.setAccessibleName("Base model file")
        self.tuned_edit = QLineEdit()
        self.tuned_edit.setReadOnly(True)
        self.tuned_edit.setPlaceholderText("No tuned model chosen")
        self.tuned_edit.setAccessibleName("Tuned model file")
        self.base_button = QPushButton("Choose &base model…")
        self.base_button.clicked.connect(self.choose_base)
        self.tuned_button = QPushButton("Choose &tuned model…")
        self.tuned_button.clicked.connect(self.choose_tuned)
        base_label = QLabel("Base model:")
        base_label.setBuddy(self.base_button)
        tuned_label = QLabel("Tuned model:")
        tuned_label.setBuddy(self.tuned_button)
        grid.addWidget(base_label, 0, 0)
        grid.addWidget(self.base_edit, 0, 1)
        grid.addWidget(self.base_button, 0, 2)
        grid.addWidget(tuned_label, 1, 0)
        grid.addWidget(self.tuned_edit, 1, 1)
        grid.addWidget(self.tuned_button, 1, 2)
        layout.addLayout(grid)

        row = QHBoxLayout()
        self.adapter_check = QCheckBox("The tuned model is a &LoRA adapter (applied on top of the base model)")
        self.adapter_check.toggled.connect(self._adapter_toggled)
        row.addWidget(self.adapter_check)
        row.addStretch(1)
        self.demo_button = QPushButton("Use the &demo models")
        self.demo_button.setToolTip("Gemma 3 270M as the base and a hardware-shop assistant adapter as the vendor's tune")
        self.demo_button.clicked.connect(self.use_demo_models)
        row.addWidget(self.demo_button)
        layout.addLayout(row)

        self.server_check = QCheckBox("The models run on a &server (for models too big for this computer)")
        self.server_check.toggled.connect(self._server_toggled)
        layout.addWidget(self.server_check)
        self.server_box = QGroupBox("Model servers (OpenAI-compatible: llama-server, vLLM, Ollama)")
        servers = QGridLayout(self.server_box)
        self.server_edits: dict[str, tuple[QLineEdit, QLineEdit]] = {}
        for row_no, (role, word) in enumerate((("base", "Base"), ("tuned", "Tuned"))):
            address = QLineEdit()
            address.setPlaceholderText("http://gpu-box:8080")
            address.setAccessibleName(f"{word} model server address")
            name = QLineEdit()
            name.setPlaceholderText("the server's only model")
            name.setAccessibleName(f"{word} model name on the server")
            label = QLabel(f"{word} model server:")
            label.setBuddy(address)
            servers.addWidget(label, row_no, 0)
            servers.addWidget(address, row_no, 1)
            servers.addWidget(QLabel("model name:"), row_no, 2)
            servers.addWidget(name, row_no, 3)
            self.server_edits[role] = (address, name)
        self.servers_button = QPushButton("C&heck the servers")
        self.servers_button.clicked.connect(self.check_servers)
        servers.addWidget(self.servers_button, 2, 3)
        servers.addWidget(help_label(
            "AuditDesk connects only to these addresses. A model on a server cannot be hashed or compared "
            "with its base, and the report says so. Both models are asked in the plain question/answer format."),
            3, 0, 1, 4)
        self.server_box.setVisible(False)
        layout.addWidget(self.server_box)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Inspection progress")
        self.progress.setVisible(False)
        self.progress_label = QLabel("")
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress)

        cards = QHBoxLayout()
        self.base_card = ModelCardView("Base model", lambda p: self.set_paths(base=p))
        self.tuned_card = ModelCardView("Tuned model", lambda p: self.set_paths(tuned=p))
        cards.addWidget(self.base_card)
        cards.addWidget(self.tuned_card)
        layout.addLayout(cards)

        lineage_box = QGroupBox("Is the tuned model made from this base?")
        lineage_layout = QVBoxLayout(lineage_box)
        self.lineage_label = QLabel("Choose both models to check.")
        self.lineage_label.setWordWrap(True)
        self.lineage_label.setTextFormat(Qt.TextFormat.PlainText)
        self.lineage_label.setAccessibleName("Lineage verdict")
        lineage_layout.addWidget(self.lineage_label)
        self.weights_chart = WeightChangeChart()
        lineage_layout.addWidget(QLabel("Where the weights changed:"))
        lineage_layout.addWidget(self.weights_chart)
        layout.addWidget(lineage_box)

        settings_box = QGroupBox("Engine settings")
        form = QFormLayout(settings_box)
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 256)
        self.threads_spin.setSpecialValueText(f"automatic ({backend.physical_cores()} cores)")
        self.threads_spin.setAccessibleName("Threads")
        form.addRow("&Threads:", self.threads_spin)
        self.ctx_spin = QSpinBox()
        self.ctx_spin.setRange(256, 131072)
        self.ctx_spin.setSingleStep(512)
        self.ctx_spin.setValue(2048)
        self.ctx_spin.setAccessibleName("Context size")
        self.ctx_spin.setToolTip("The longest question plus answer, in tokens, that one answer may use. "
                                 "The answers generated together share one cache sized from this.")
        form.addRow("&Context size (tokens):", self.ctx_spin)
        self.gpu_spin = QSpinBox()
        self.gpu_spin.setRange(0, 999)
        self.gpu_spin.setAccessibleName("GPU layers")
        self.gpu_note = QLabel("")
        self.gpu_note.setWordWrap(True)
        gpu_row = QVBoxLayout()
        gpu_row.addWidget(self.gpu_spin)
        gpu_row.addWidget(self.gpu_note)
        form.addRow("&GPU layers:", gpu_row)
        for spin in (self.threads_spin, self.ctx_spin, self.gpu_spin):
            spin.valueChanged.connect(self._engine_changed)
        layout.addWidget(settings_box)

        nav = QHBoxLayout()
        nav.addStretch(1)
        self.next_button = QPushButton("&Next: choose probes →")
        self.next_button.clicked.connect(lambda: self.context.go("probes"))
        nav.addWidget(self.next_button)
        layout.addLayout(nav)
        layout.addStretch(1)

        self._gpu_checked = False
        self._load_settings()
        self.session.models_changed.connect(self._refresh)
        self._refresh()

    # -- settings --------------------------------------------------------------------
    def _load_settings(self) -> None:
        s = self.context.settings
        for role, (address, name) in self.server_edits.items():
            address.setText(str(s.value(f"servers/{role}", "")))
            name.setText(str(s.value(f"servers/{role}_name", "")))
        self.threads_spin.setValue(s.get("engine/threads", 0))
        self.ctx_spin.setValue(s.get("engine/n_ctx", self.session.engine.n_ctx))
        self.gpu_spin.setValue(s.get("engine/gpu_layers", 0))
        self._engine_changed()

    def save_settings(self) -> None:
        s = self.context.settings
        for role, (address, name) in self.server_edits.items():
            s.setValue(f"servers/{role}", address.text().strip())
            s.setValue(f"servers/{role}_name", name.text().strip())
        s.setValue("engine/threads", self.threads_spin.value())
        s.setValue("engine/n_ctx", self.ctx_spin.value())
        s.setValue("engine/gpu_layers", self.gpu_spin.value())

    def _engine_changed(self) -> None:
        engine = self.session.engine
        engine.threads = self.threads_spin.value()
        engine.n_ctx = self.ctx_spin.value()
        engine.gpu_layers = self.gpu_spin.value() if self.gpu_spin.isEnabled() else 0

    def on_shown(self) -> None:
        if not self._gpu_checked:
            # Asking llama.cpp loads its shared library (a moment); do it once, off the GUI thread.
            self._gpu_checked = True
            task = Task("gpu-check", backend.gpu_support)
            task.result.connect(self._gpu_result)
            self.context.tasks.start(task)

    def _gpu_result(self, result: tuple[bool, str]) -> None:
        supported, reason = result
        self.gpu_spin.setEnabled(supported)
        self.gpu_note.setText(reason)
        if not supported:
            self.gpu_spin.setValue(0)
        self._engine_changed()

    # -- choosing ------------------------------------------------------------------
    def _dialog(self, title: str) -> str | None:
        folder = str(self.context.settings.value("folders/models", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, title, folder, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.context.settings.setValue("folders/models", str(Path(path).parent))
        return path or None

    def choose_base(self) -> None:
        path = self._dialog("Choose the base model")
        if path:
            self.set_paths(base=path)

    def choose_tuned(self) -> None:
        path = self._dialog("Choose the tuned model or LoRA adapter")
        if path:
            self.set_paths(tuned=path)

    def _server_toggled(self, checked: bool) -> None:
        self.server_box.setVisible(checked)
        for widget in (self.base_edit, self.tuned_edit, self.base_button, self.tuned_button,
                       self.adapter_check, self.demo_button):
            widget.setEnabled(not checked)
        m = self.session.models
        if checked != bool(m.base_server):  # files and servers are never mixed in the window
            self.session.set_models(None, None, False)
        if checked:
            self.server_edits["base"][0].setFocus()

    def check_servers(self) -> None:
        base, base_name = (e.text().strip() for e in self.server_edits["base"])
        tuned, tuned_name = (e.text().strip() for e in self.server_edits["tuned"])
        if not (base and tuned):
            self.progress_label.setText("Give the address of the server for each model (it may be the same server "
                                        "with two model names).")
            return
        self.save_settings()
        self.servers_button.setEnabled(False)
        self._busy("Asking the servers which models they run…", 0)
        task = Task("servers", backend.inspect_servers, base, base_name, tuned, tuned_name)
        task.result.connect(lambda result: self._servers_checked(base, tuned, result))
        task.error.connect(lambda exc, tb: (self._idle(), show_error(self, "Could not use a model server", exc, tb)))
        task.finished.connect(lambda: self.servers_button.setEnabled(True))
        self.context.tasks.start(task)

    def _servers_checked(self, base: str, tuned: str, result: dict) -> None:
        self._idle()
        if not self.server_check.isChecked():
            return  # the user went back to files meanwhile
        self.session.set_models(Path(result["base_name"]), Path(result["tuned_name"]), False,
                                base_server=base, tuned_server=tuned)
        self.session.set_inspection(result)
        self.context.show_status("Both servers answered. Next: choose the probe packs (Ctrl+2).", 8000)

    def _adapter_toggled(self, checked: bool) -> None:
        m = self.session.models
        if m.tuned_is_adapter != checked:
            self.session.set_models(m.base, m.tuned, checked)
            self._inspect_if_ready()

    def set_paths(self, base: str | None = None, tuned: str | None = None, adapter: bool | None = None) -> None:
        """Choose models (any of the three); inspection starts when both are known."""
        m = self.session.models
        new_base = Path(base) if base else m.base
        new_tuned = Path(tuned) if tuned else m.tuned
        is_adapter = m.tuned_is_adapter if adapter is None else adapter
        self.adapter_check.blockSignals(True)
        self.adapter_check.setChecked(is_adapter)
        self.adapter_check.blockSignals(False)
        self.session.set_models(new_base, new_tuned, is_adapter)
        self._inspect_if_ready()

    def use_demo_models(self) -> None:
        self.demo_button.setEnabled(False)
        self._busy("Preparing the demo models (the first time takes a few seconds)…", 0)
        task = Task("demo", backend.prepare_demo_models)
        task.result.connect(lambda demo: self.set_paths(base=demo["base"], tuned=demo["adapter"], adapter=True))
        task.error.connect(lambda exc, tb: (self._idle(), show_error(self, "Demo models", exc, tb)))
        task.finished.connect(lambda: self.demo_button.setEnabled(True))
        self.context.tasks.start(task)

    def _inspect_if_ready(self) -> None:
        m = self.session.models
        if not m.chosen:
            self._refresh()
            return
        for task in self.context.tasks.running("inspect"):
            task.cancel()
        from auditdesk.core.progress import CancelToken

        self._busy("Reading and fingerprinting the models…", 0)
        task = Task("inspect", backend.inspect_pair, str(m.base), str(m.tuned), m.tuned_is_adapter, cancel=CancelToken())
        wanted = (m.base, m.tuned, m.tuned_is_adapter)
        task.progress.connect(self._on_progress)
        task.result.connect(lambda result: self._inspected(wanted, result))
        task.error.connect(lambda exc, tb: self._inspect_failed(wanted, exc, tb))
        task.cancelled.connect(self._idle)
        self.context.tasks.start(task)

    def _on_progress(self, event) -> None:  # noqa: ANN001
        self.progress.setVisible(True)
        self.progress.setMaximum(max(1, event.total) if event.total else 0)
        self.progress.setValue(event.done)
        if event.message:
            self.progress_label.setText(event.message)

    def _busy(self, text: str, maximum: int) -> None:
        self.progress_label.setText(text)
        self.progress.setVisible(True)
        self.progress.setRange(0, maximum)

    def _idle(self) -> None:
        self.progress.setVisible(False)
        self.progress_label.setText("")

    def _current(self, wanted: tuple) -> bool:
        m = self.session.models
        return wanted == (m.base, m.tuned, m.tuned_is_adapter)

    def _inspected(self, wanted: tuple, result: dict) -> None:
        if not self._current(wanted):
            return  # the user chose other files meanwhile
        self._idle()
        for key in ("base_card", "tuned_card"):
            if result.get("warnings") and key == "tuned_card":
                result[key] = {**result[key], "warnings": result[key].get("warnings", []) + result["warnings"]}
        self.session.set_inspection(result)
        self.context.show_status("Both models inspected. Next: choose the probe packs (Ctrl+2).", 8000)

    def _inspect_failed(self, wanted: tuple, exc: BaseException, details: str) -> None:
        if not self._current(wanted):
            return
        self._idle()
        show_error(self, "Could not read a model", exc, details)

    def _refresh(self) -> None:
        m = self.session.models
        self.base_edit.setText(str(m.base) if m.base else "")
        self.tuned_edit.setText(str(m.tuned) if m.tuned else "")
        self.tuned_card.setTitle("Tuned model — LoRA adapter" if m.tuned_is_adapter else "Tuned model")
        self.base_card.show_card(m.base_card)
        self.tuned_card.show_card(m.tuned_card)
        if m.lineage:
            self.lineage_label.setText(_lineage_text(m.lineage))
        else:
            self.lineage_label.setText("Choose both models to check." if not m.chosen else "Checking…")
        weights = m.weights or {}
        title = "Adapter update size per layer" if weights.get("kind") == "adapter" else "Relative change per layer"
        self.weights_chart.set_data(weights.get("layers", []), title if weights.get("layers") else "",
                                    weights.get("note") or "Choose two models to see where the weights changed.")
        self.next_button.setEnabled(self.session.models_ready)


def _lineage_text(lineage: dict) -> str:
    lines = [str(lineage.get("summary") or lineage.get("verdict") or "")]
    for key in ("differences", "warnings"):
        for entry in lineage.get(key) or []:
            lines.append(f"• {entry if isinstance(entry, str) else entry.get('message', entry)}")
    return "\n".join(line for line in lines if line)
