"""Step 2, Probes: which probe packs to ask, how many samples, how long; import a pack.

Packs are read and validated in a worker; an import's validation errors are
shown inline, in the loader's own words (file, line, probe, field).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.models.tables import PACK_PROBE_COLUMNS, DictTableModel
from auditdesk.ui.widgets.common import help_label, section_label, show_error
from auditdesk.ui.workers import Task


class ProbesPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.packs: list[dict] = []
        self._loaded = False
        self.session.packs_changed.connect(self.reload)
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Step 2 — What should both models be asked?"))
        layout.addWidget(help_label(
            "Tick the probe packs to use. Each pack is a set of questions about one concern "
            "(gender roles, advice to different people, safety…). Select a pack to preview its questions."))

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Probe packs")
        self.tree.setHeaderLabels(["Pack", "Probes", "Categories", "Source"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.tree.itemChanged.connect(self._checked_changed)
        self.tree.currentItemChanged.connect(self._show_pack)
        splitter.addWidget(self.tree)

        preview = QWidget()
        preview_layout = QVBoxLayout(preview)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        self.description = QLabel("Select a pack to see its description and questions.")
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.PlainText)
        preview_layout.addWidget(self.description)
        self.preview_model = DictTableModel(PACK_PROBE_COLUMNS, self)
        self.preview = QTableView()
        self.preview.setAccessibleName("Questions of the selected pack")
        self.preview.setModel(self.preview_model)
        self.preview.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.preview.horizontalHeader().setStretchLastSection(True)
        self.preview.verticalHeader().setVisible(False)
        self.preview.setWordWrap(False)
        self.preview.verticalHeader().setDefaultSectionSize(self.preview.fontMetrics().height() + 6)
        preview_layout.addWidget(self.preview)
        splitter.addWidget(preview)
        splitter.setSizes([220, 260])
        layout.addWidget(splitter, 1)

        self.import_errors = QPlainTextEdit()
        self.import_errors.setReadOnly(True)
        self.import_errors.setAccessibleName("Problems in the imported pack")
        self.import_errors.setMaximumHeight(90)
        self.import_errors.setVisible(False)
        layout.addWidget(self.import_errors)

        bottom = QHBoxLayout()
        form = QFormLayout()
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 50)
        self.samples_spin.setValue(self.session.probes.samples)
        self.samples_spin.setToolTip("More samples make the statistics surer but the audit longer")
        form.addRow("&Samples per question:", self.samples_spin)
        self.tokens_spin = QSpinBox()
        self.tokens_spin.setRange(8, 2048)
        self.tokens_spin.setSingleStep(16)
        self.tokens_spin.setValue(self.session.probes.max_tokens)
        form.addRow("&Answer length (tokens):", self.tokens_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(self.session.probes.seed)
        self.seed_spin.setToolTip("The same seed gives the same answers, so an audit can be repeated")
        form.addRow("S&eed:", self.seed_spin)
        bottom.addLayout(form)
        right = QVBoxLayout()
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.estimate.setAccessibleName("Run time estimate")
        right.addWidget(self.estimate)
        buttons = QHBoxLayout()
        self.import_button = QPushButton("&Import pack…")
        self.import_button.clicked.connect(self.import_pack)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        self.next_button = QPushButton("&Next: run the audit →")
        self.next_button.clicked.connect(lambda: self.context.go("run"))
        buttons.addWidget(self.next_button)
        right.addLayout(buttons)
        bottom.addLayout(right, 1)
        layout.addLayout(bottom)

        for spin in (self.samples_spin, self.tokens_spin, self.seed_spin):
            spin.valueChanged.connect(self._sampling_changed)
            spin.setMaximumWidth(140)
        self._load_settings()
        self._update_estimate()

    # -- settings -------------------------------------------------------------------
    def _load_settings(self) -> None:
        s = self.context.settings
        self.samples_spin.setValue(s.get("probes/samples", self.session.probes.samples))
        self.tokens_spin.setValue(s.get("probes/max_tokens", self.session.probes.max_tokens))
        self._wanted = [p for p in str(s.value("probes/packs", "quick")).split("\n") if p]

    def save_settings(self) -> None:
        s = self.context.settings
        s.setValue("probes/samples", self.samples_spin.value())
        s.setValue("probes/max_tokens", self.tokens_spin.value())
        s.setValue("probes/packs", "\n".join(self.session.probes.packs))

    def _sampling_changed(self) -> None:
        self.session.set_sampling(self.samples_spin.value(), self.tokens_spin.value(), self.seed_spin.value())
        self._update_estimate()

    # -- packs ------------------------------------------------------------------------
    def on_shown(self) -> None:
        if not self._loaded:
            self.reload()
        self._update_estimate()

    def reload(self) -> None:
        self._loaded = True
        self.description.setText("Reading the probe packs…")
        task = Task("packs", backend.list_packs)
        task.result.connect(self._packs_loaded)
        task.error.connect(lambda exc, tb: show_error(self, "Probe packs", exc, tb))
        self.context.tasks.start(task)

    def _packs_loaded(self, packs: list[dict]) -> None:
        self.packs = packs
        wanted = set(self.session.probes.packs or self._wanted)
        self.tree.blockSignals(True)
        self.tree.clear()
        for pack in packs:
            cats = ", ".join(f"{c} ({n})" for c, n in sorted(pack["categories"].items()))
            item = QTreeWidgetItem([pack["title"] or pack["id"], str(pack["n_probes"]), cats if not pack["problem"] else "cannot be used", pack["source"]])
            item.setData(0, Qt.ItemDataRole.UserRole, pack["id"])
            item.setToolTip(0, pack["description"] or pack["problem"] or "")
            item.setToolTip(2, cats)
            if pack["problem"]:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                item.setToolTip(2, pack["problem"])
            else:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if pack["id"] in wanted else Qt.CheckState.Unchecked)
            self.tree.addTopLevelItem(item)
        self.tree.blockSignals(False)
        if self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._checked_changed()

    def checked_packs(self) -> list[str]:
        ids = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.flags() & Qt.ItemFlag.ItemIsUserCheckable and item.checkState(0) == Qt.CheckState.Checked:
                ids.append(item.data(0, Qt.ItemDataRole.UserRole))
        return ids

    def set_checked(self, pack_ids: list[str]) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                state = Qt.CheckState.Checked if item.data(0, Qt.ItemDataRole.UserRole) in pack_ids else Qt.CheckState.Unchecked
                item.setCheckState(0, state)

    def _checked_changed(self, *_args) -> None:  # noqa: ANN002
        self.session.set_packs(self.checked_packs())
        self.next_button.setEnabled(self.session.probes_ready)
        self._update_estimate()

    def _pack(self, pack_id: str | None) -> dict | None:
        return next((p for p in self.packs if p["id"] == pack_id), None)

    def _show_pack(self, item: QTreeWidgetItem | None, _previous=None) -> None:  # noqa: ANN001
        pack = self._pack(item.data(0, Qt.ItemDataRole.UserRole)) if item else None
        if pack is None:
            self.preview_model.set_rows([])
            return
        if pack["problem"]:
            self.description.setText(pack["problem"])
        else:
            self.description.setText(f"{pack['title']} (version {pack['version']}): {pack['description']}")
        self.preview_model.set_rows(pack["probes"])
        self.preview.resizeColumnsToContents()

    def _update_estimate(self) -> None:
        chosen = [self._pack(p) for p in self.session.probes.packs]
        chosen = [p for p in chosen if p]
        if not chosen:
            self.estimate.setText("Tick at least one pack.")
            return
        prompts = sum(p["n_prompts"] for p in chosen)
        pairs = sum(p.get("n_pairs", 0) for p in chosen)
        samples = self.samples_spin.value()
        answers = 2 * prompts * samples
        text = f"{answers:,} answers to collect ({prompts} questions × {samples} samples × 2 models)"
        if pairs:
            text += f" and {2 * pairs:,} sentences to score"
        text += "; before it starts, the audit measures both models' speed and says how long it will take."
        self.estimate.setText(text)

    # -- import --------------------------------------------------------------------------
    def import_pack(self) -> None:
        folder = str(self.context.settings.value("folders/packs", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Import a probe pack", folder, "Probe packs (*.yaml *.yml)")
        if path:
            self.context.settings.setValue("folders/packs", str(Path(path).parent))
            self.import_file(path)

    def import_file(self, path: str) -> None:
        self.import_errors.setVisible(False)
        task = Task("import-pack", backend.import_pack, path)
        task.result.connect(self._imported)
        task.error.connect(self._import_failed)
        self.context.tasks.start(task)

    def _imported(self, result: dict) -> None:
        self.import_errors.setVisible(False)
        self._wanted = [*self.session.probes.packs, result["id"]]
        self.session.probes.packs = list(self._wanted)
        self.context.show_status(f"Imported pack '{result['id']}' with {result['n_probes']} probes.", 8000)
        self.reload()

    def _import_failed(self, exc: BaseException, details: str) -> None:
        problems = getattr(exc, "problems", None) or [str(exc)]
        self.import_errors.setPlainText("The pack was not imported:\n" + "\n".join(problems))
        self.import_errors.setVisible(True)
