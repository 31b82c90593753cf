"""History: the audits stored in the database — open one, compare two, resume or delete.

The run list is read in a worker; deleting asks first. Comparing runs the core's
drift statistics (`auditdesk compare`) and shows its lines, not a verdict of its own.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.models.tables import ROW_ROLE, RUN_COLUMNS, DictTableModel, FilterProxy
from auditdesk.ui.widgets.common import help_label, section_label, show_error
from auditdesk.ui.workers import Task


class HistoryPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("History — audits stored on this computer"))
        layout.addWidget(help_label("Open a finished audit to see its results again, resume one that was interrupted, "
                                    "or select two audits of the same models (Ctrl+click) to see what changed between them."))
        self.model = DictTableModel(RUN_COLUMNS, self)
        self.proxy = FilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setAccessibleName("Stored audits")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        self.comparison = QPlainTextEdit()
        self.comparison.setReadOnly(True)
        self.comparison.setAccessibleName("Comparison of two audits")
        self.comparison.setPlaceholderText("Select two audits and press Compare: the tuned answers of the older "
                                           "audit are tested against the newer one's, category by category.")
        self.comparison.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        splitter.addWidget(self.comparison)
        layout.addWidget(splitter, 1)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("&Open")
        self.open_button.clicked.connect(self.open_selected)
        self.resume_button = QPushButton("&Resume")
        self.resume_button.clicked.connect(self.resume_selected)
        self.compare_button = QPushButton("&Compare two")
        self.compare_button.clicked.connect(self.compare_selected)
        self.delete_button = QPushButton("&Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button = QPushButton("Re&fresh")
        self.refresh_button.clicked.connect(self.refresh)
        for button in (self.open_button, self.resume_button, self.compare_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        layout.addLayout(buttons)
        self.session.run_changed.connect(self.refresh_if_visible)
        self._selection_changed()

    def on_shown(self) -> None:
        self.refresh()

    def refresh_if_visible(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        task = Task("runs", backend.list_runs, str(self.session.db_path))
        task.result.connect(self._loaded)
        task.error.connect(lambda exc, tb: show_error(self, "Could not read the audit history", exc, tb))
        self.context.tasks.start(task)

    def _loaded(self, runs: list[dict]) -> None:
        self.model.set_rows(runs)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.resizeColumnsToContents()
        self._selection_changed()

    def selected(self) -> list[dict]:
        rows = self.table.selectionModel().selectedRows()
        return [index.data(ROW_ROLE) for index in rows]

    def _selection_changed(self, *_args) -> None:  # noqa: ANN002
        chosen = self.selected()
        running = bool(self.context.tasks.running("audit"))
        one = len(chosen) == 1
        self.open_button.setEnabled(one and chosen[0]["status"] == "completed")
        self.resume_button.setEnabled(one and chosen[0]["status"] != "completed" and not running)
        self.compare_button.setEnabled(len(chosen) == 2)
        self.delete_button.setEnabled(bool(chosen) and not running)

    def open_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1 or chosen[0]["status"] != "completed":
            return
        run_id = int(chosen[0]["id"])
        task = Task("open-run", backend.latest_findings, str(self.session.db_path), run_id)
        task.result.connect(lambda findings: self._opened(run_id, findings))
        task.error.connect(lambda exc, tb: show_error(self, "Could not open the audit", exc, tb))
        self.context.tasks.start(task)

    def _opened(self, run_id: int, findings: dict | None) -> None:
        self.session.set_run(run_id, "completed")
        self.session.set_findings(findings)
        self.context.go("results")

    def resume_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.context.resume_run(int(chosen[0]["id"]))

    def compare_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 2:
            return
        a, b = sorted(int(r["id"]) for r in chosen)
        task = Task("compare", backend.compare_runs, str(self.session.db_path), a, b)
        task.result.connect(self._compared)
        task.error.connect(lambda exc, tb: show_error(self, "Could not compare the audits", exc, tb))
        self.context.tasks.start(task)

    def _compared(self, result: dict) -> None:
        self.comparison.setPlainText("\n".join(result["lines"]))

    def delete_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        ids = ", ".join(str(r["id"]) for r in chosen)
        answer = QMessageBox.question(self, "Delete audits?",
                                      f"Delete audit(s) {ids} with all their answers, analyses and notes? This cannot be undone.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        for row in chosen:
            task = Task("delete-run", backend.delete_run, str(self.session.db_path), int(row["id"]))
            task.error.connect(lambda exc, tb: show_error(self, "Could not delete the audit", exc, tb))
            task.finished.connect(self.refresh)
            self.context.tasks.start(task)
            if self.session.run_id == int(row["id"]):
                self.session.set_run(None, None)
