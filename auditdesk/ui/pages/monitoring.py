"""Monitoring: the monitors stored in the database, their last result and a timeline per category.

Read-only: monitors are added, run and scheduled with `auditdesk monitor …` (a
timer has no window). The overview is read in a worker; the page draws what the
core's timeline says and decides nothing of its own.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.models.tables import ROW_ROLE, DictTableModel
from auditdesk.ui.widgets.common import help_label, section_label, show_error
from auditdesk.ui.widgets.timeline import MonitorTimeline
from auditdesk.ui.workers import Task


def _last_result(row: dict) -> str:
    if row.get("last_run") is None:
        return "not run yet"
    if row.get("last_new_concerns"):
        return "NEW CONCERN: " + ", ".join(row["last_new_concerns"])
    if row.get("last_concerning"):
        return "concerning: " + ", ".join(row["last_concerning"])
    return "nothing concerning"


MONITOR_COLUMNS = [
    ("Monitor", lambda r: r.get("name")),
    ("Every", lambda r: r.get("every") or "–"),
    ("Runs", lambda r: r.get("runs")),
    ("Last run", lambda r: r.get("last_run") or "–"),
    ("When", lambda r: (r.get("last_time") or "")[:16].replace("T", " ")),
    ("Last result", _last_result),
]


class MonitoringPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.overview: dict = {"monitors": [], "timelines": {}}
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Monitoring — models re-audited over time"))
        layout.addWidget(help_label(
            "Monitors re-audit a tuned or deployed model and compare each run with the one before. Add and "
            "schedule them with `auditdesk monitor add` and `auditdesk monitor schedule` (see docs/monitoring.md)."))
        self.model = DictTableModel(MONITOR_COLUMNS, self)
        self.table = QTableView()
        self.table.setAccessibleName("Monitors")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(180)
        self.table.selectionModel().selectionChanged.connect(self._show_selected)
        layout.addWidget(self.table)
        self.timeline = MonitorTimeline()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.timeline)
        layout.addWidget(scroll, 1)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setAccessibleName("Last monitored run")
        self.summary.setMaximumHeight(120)
        layout.addWidget(self.summary)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.refresh_button = QPushButton("Re&fresh")
        self.refresh_button.clicked.connect(self.refresh)
        buttons.addWidget(self.refresh_button)
        layout.addLayout(buttons)

    def on_shown(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        task = Task("monitors", backend.monitoring_overview, str(self.session.db_path))
        task.result.connect(self._loaded)
        task.error.connect(lambda exc, tb: show_error(self, "Could not read the monitors", exc, tb))
        self.context.tasks.start(task)

    def _loaded(self, overview: dict) -> None:
        self.overview = overview
        self.model.set_rows(overview["monitors"])
        self.table.resizeColumnsToContents()
        if overview["monitors"]:
            self.table.selectRow(0)
        else:
            self.timeline.set_timeline({"categories": [], "runs": []})
            self.summary.setPlainText("No monitors yet.")

    def _show_selected(self, *_args) -> None:  # noqa: ANN002
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        name = rows[0].data(ROW_ROLE)["name"]
        timeline = self.overview["timelines"].get(name) or {"categories": [], "runs": []}
        self.timeline.set_timeline(timeline, timeline.get("concern_scores"))
        runs = timeline["runs"]
        if not runs:
            self.summary.setPlainText(f"Monitor {name} has not run yet: `auditdesk monitor run {name}`.")
            return
        from auditdesk.core.monitoring.monitors import MonitorOutcome

        self.summary.setPlainText(MonitorOutcome(**runs[-1]).summary_text())
