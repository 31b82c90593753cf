"""Step 4, Results: category traffic lights, the probe table, answers side by side, the cluster map.

Findings and answers are loaded in a worker; the analyst's confirm/dismiss notes
are written in a worker too. Answers are untrusted and shown as plain text only.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.models.tables import DIVERGENCE_COLUMN, RESULT_COLUMNS, ROW_ROLE, DictTableModel, FilterProxy
from auditdesk.core.findings_contract import category_status
from auditdesk.ui.widgets.charts import CategoryStrip, ClusterMap
from auditdesk.ui.widgets.common import AnswerView, help_label, section_label, show_error, side_by_side
from auditdesk.ui.workers import Task


class ResultsPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.data: dict | None = None
        self.loaded_run: int | None = None
        self._points_answers: dict[str, str] = {}

        layout = QVBoxLayout(self)
        self.heading = section_label("Step 4 — What changed, and is it concerning?")
        layout.addWidget(self.heading)
        self.verdict = help_label("Run an audit to see its results.")
        self.verdict.setAccessibleName("Verdict")
        layout.addWidget(self.verdict)
        self.categories = CategoryStrip()
        self.categories.category_clicked.connect(self._filter_category)
        layout.addWidget(self.categories)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        filters = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter probes (id, category, question…)")
        self.filter_edit.setAccessibleName("Filter probes")
        self.filter_edit.setClearButtonEnabled(True)
        filters.addWidget(self.filter_edit, 1)
        self.category_combo = QComboBox()
        self.category_combo.setAccessibleName("Category filter")
        self.category_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        filters.addWidget(self.category_combo)
        self.flagged_check = QCheckBox("C&hanged only")
        filters.addWidget(self.flagged_check)
        left_layout.addLayout(filters)
        self.model = DictTableModel(RESULT_COLUMNS, self)
        self.proxy = FilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setAccessibleName("Probes")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.selectionModel().currentRowChanged.connect(self._show_probe)
        left_layout.addWidget(self.table)
        splitter.addWidget(left)

        self.tabs = QTabWidget()
        answers_tab = QWidget()
        answers_layout = QVBoxLayout(answers_tab)
        self.question = QLabel("Select a probe to read its answers.")
        self.question.setTextFormat(Qt.TextFormat.PlainText)
        self.question.setWordWrap(True)
        self.question.setAccessibleName("Question")
        answers_layout.addWidget(self.question)
        self.hits = QLabel("")
        self.hits.setTextFormat(Qt.TextFormat.PlainText)
        self.hits.setWordWrap(True)
        answers_layout.addWidget(self.hits)
        self.base_view = AnswerView("Base model answers")
        self.tuned_view = AnswerView("Tuned model answers")
        answers_layout.addLayout(side_by_side(self.base_view, self.tuned_view), 1)

        note_box = QGroupBox("Your assessment of this finding")
        note_layout = QHBoxLayout(note_box)
        self.confirm_radio = QRadioButton("C&onfirmed")
        self.dismiss_radio = QRadioButton("&Dismissed")
        self.assessment = QButtonGroup(self)
        self.assessment.addButton(self.confirm_radio)
        self.assessment.addButton(self.dismiss_radio)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note (why you confirm or dismiss it)")
        self.note_edit.setAccessibleName("Analyst note")
        self.save_note = QPushButton("&Save note")
        self.save_note.clicked.connect(self.save_annotation)
        note_layout.addWidget(self.confirm_radio)
        note_layout.addWidget(self.dismiss_radio)
        note_layout.addWidget(self.note_edit, 1)
        note_layout.addWidget(self.save_note)
        answers_layout.addWidget(note_box)
        self.tabs.addTab(answers_tab, "&Answers side by side")

        map_tab = QWidget()
        map_layout = QVBoxLayout(map_tab)
        map_layout.addWidget(help_label("Each dot is one answer, placed by meaning: answers that say similar things sit close "
                                        "together. Ringed dots belong to groups of answers only the tuned model gives. "
                                        "Click a dot (or use the arrow keys) to read the answer."))
        self.map = ClusterMap()
        self.map.point_clicked.connect(self._show_point)
        map_layout.addWidget(self.map, 2)
        self.point_view = AnswerView("Answer of the chosen dot")
        map_layout.addWidget(self.point_view, 1)
        self.tabs.addTab(map_tab, "Cluster &map")
        splitter.addWidget(self.tabs)
        splitter.setSizes([640, 520])
        layout.addWidget(splitter, 1)

        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.category_combo.currentIndexChanged.connect(self._apply_filters)
        self.flagged_check.toggled.connect(self._apply_filters)
        self.session.findings_changed.connect(self._invalidate)
        self.session.run_changed.connect(self._invalidate)

    # -- loading ------------------------------------------------------------------------
    def _invalidate(self) -> None:
        if self.session.run_id != self.loaded_run or self.session.findings is not None:
            self.loaded_run = None
        if self.isVisible():
            self.on_shown()

    def on_shown(self) -> None:
        run_id = self.session.run_id
        if run_id is None or run_id == self.loaded_run:
            return
        self.loaded_run = run_id
        self.verdict.setText("Loading the results…")
        task = Task("results", backend.load_results, str(self.session.db_path), run_id)
        task.result.connect(self.show_results)
        task.error.connect(lambda exc, tb: show_error(self, "Could not load the results", exc, tb))
        self.context.tasks.start(task)

    def show_results(self, data: dict) -> None:
        self.data = data
        findings = data.get("findings")
        run = data["run"]
        self.heading.setText(f"Step 4 — Results of audit {run['id']}")
        annotations = {}
        for row in data.get("annotations", []):
            annotations[row.get("probe_id")] = row
        self._annotations = annotations
        rows = []
        if findings:
            self.verdict.setText(((findings.get("verdict") or {}).get("text") or "") + _judge_sentence(findings))
            categories = findings.get("categories", [])
            self.categories.set_categories(categories)
            status_by_cat = {c["category"]: category_status(c) for c in categories}
            for probe in findings.get("probes", []):
                row = dict(probe)
                row["_status"] = "concerning" if probe.get("flagged") and status_by_cat.get(probe["category"]) == "concerning" else (
                    "changed" if probe.get("flagged") else "unchanged")
                row["_status_text"] = {"concerning": "changed; category concerning", "changed": "changed",
                                       "unchanged": "no change found"}[row["_status"]]
                rows.append(row)
            self._set_points(findings)
        else:
            self.verdict.setText("The analysis is not available for this run in this build of AuditDesk; "
                                 "the stored answers are shown below without statistics.")
            self.categories.set_categories([])
            for probe_id, meta in data["meta"].items():
                rows.append({"probe_id": probe_id, "pack": meta["pack"], "category": meta["category"],
                             "kind": data["kinds"].get(probe_id, ""), "_status": "unknown", "_status_text": "not analysed"})
            self.map.set_points([])
        for row in rows:
            row["_question"] = data["prompts"].get(row["probe_id"], row.get("question", ""))
            note = annotations.get(row["probe_id"])
            row["_annotation"] = f"{note['status']}: {note['note']}" if note else ""
        self.model.set_rows(rows)
        cats = sorted({r.get("category", "") for r in rows})
        self.category_combo.blockSignals(True)
        self.category_combo.clear()
        self.category_combo.addItem("All categories", None)
        for cat in cats:
            self.category_combo.addItem(cat, cat)
        self.category_combo.blockSignals(False)
        self.table.sortByColumn(DIVERGENCE_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        if self.proxy.rowCount():
            self.table.selectionModel().setCurrentIndex(
                self.proxy.index(0, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)

    def _set_points(self, findings: dict) -> None:
        scope = next((c for c in findings.get("clusters", []) if c.get("scope") == "all"), None)
        if scope is None:
            self.map.set_points([])
            return
        tuned_only = {c["id"] for c in scope.get("clusters", []) if c.get("new_behaviour")}
        self.map.set_points(scope.get("points", []), tuned_only)

    # -- filtering ------------------------------------------------------------------------
    def _filter_category(self, category: str) -> None:
        index = self.category_combo.findData(category)
        if index >= 0:
            self.category_combo.setCurrentIndex(index)

    def _apply_filters(self) -> None:
        category = self.category_combo.currentData()
        flagged = self.flagged_check.isChecked()
        if category is None and not flagged:
            self.proxy.set_row_filter(None)
        else:
            self.proxy.set_row_filter(lambda row: (category is None or row.get("category") == category)
                                      and (not flagged or bool(row.get("flagged"))))

    # -- one probe -----------------------------------------------------------------------------
    def current_probe(self) -> dict | None:
        index = self.table.selectionModel().currentIndex()
        return index.data(ROW_ROLE) if index.isValid() else None

    def _show_probe(self, current, _previous=None) -> None:  # noqa: ANN001
        row = current.data(ROW_ROLE) if current.isValid() else None
        if row is None or self.data is None:
            return
        probe_id = row["probe_id"]
        answers = self.data["answers"].get(probe_id, {"base": [], "tuned": []})
        self.question.setText(f"{probe_id} ({row.get('category')}, {row.get('kind')}): {self.data['prompts'].get(probe_id, '')}")
        patterns, lines = self._detector_hits(row)
        harm = [f"{name.replace('_', ' ')} — base {r.get('base_hits', 0)} of {r.get('base_n', 0)}, "
                f"tuned {r.get('tuned_hits', 0)} of {r.get('tuned_n', 0)}"
                for name, r in (row.get("harm_rates") or {}).items() if r.get("base_hits") or r.get("tuned_hits")]
        self.hits.setText(
            ("Answers that read as harmful (harm scorer, decides concern): " + "; ".join(harm) if harm
             else "The harm scorer found no harmful answer in this probe.")
            + "\n" + ("Word-list hits, highlighted (supporting only): " + "; ".join(lines) if lines
                      else "No word-list hits in this probe's answers."))
        judged = _judge_grades_line(self.data.get("findings"), answers)
        if judged:
            self.hits.setText(self.hits.text() + "\n" + judged)
        self.base_view.set_answers(answers["base"], patterns)
        self.tuned_view.set_answers(answers["tuned"], patterns)
        note = self._annotations.get(probe_id)
        self.assessment.setExclusive(False)
        self.confirm_radio.setChecked(bool(note) and note["status"] == "confirmed")
        self.dismiss_radio.setChecked(bool(note) and note["status"] == "dismissed")
        self.assessment.setExclusive(True)
        self.note_edit.setText(note["note"] if note else "")

    def _detector_hits(self, row: dict) -> tuple[list, list[str]]:
        rates = row.get("detector_rates") or {}
        patterns, lines = [], []
        by_id = {d["id"]: d for d in (self.data or {}).get("detectors", [])}
        for det_id, rate in rates.items():
            hits = (rate.get("base_hits") or 0) + (rate.get("tuned_hits") or 0)
            if not hits:
                continue
            det = by_id.get(det_id)
            name = det["name"] if det else det_id
            lines.append(f"{name} — base {rate.get('base_hits', 0)}, tuned {rate.get('tuned_hits', 0)}")
            if det is not None:
                patterns.append(det["regex"])
        return patterns, lines

    def _show_point(self, point: dict) -> None:
        if self.data is None:
            return
        probe_id = point.get("probe_id")
        answers = self.data["answers"].get(probe_id, {}).get(point.get("role"), [])
        # The point's key is the answer's unit key (…/sample); show the matching sample when we can.
        text = None
        key = str(point.get("key", ""))
        tail = key.rsplit("/", 1)[-1]
        if tail.isdigit() and int(tail) < len(answers):
            text = answers[int(tail)]
        if text is None and answers:
            text = answers[0]
        role = "tuned" if point.get("role") == "tuned" else "base"
        self.point_view.setPlainText(f"{role} model, probe {probe_id}:\n\n{text or '(answer not found)'}")

    def save_annotation(self) -> None:
        row = self.current_probe()
        if row is None or self.session.run_id is None:
            return
        if not (self.confirm_radio.isChecked() or self.dismiss_radio.isChecked()):
            show_error(self, "Assessment", "Choose Confirmed or Dismissed before saving the note.")
            return
        status = "confirmed" if self.confirm_radio.isChecked() else "dismissed"
        note = self.note_edit.text()
        task = Task("annotate", backend.annotate, str(self.session.db_path), self.session.run_id, row["probe_id"], status, note)
        task.result.connect(lambda _id: self._annotated(row, status, note))
        task.error.connect(lambda exc, tb: show_error(self, "Could not save the note", exc, tb))
        self.context.tasks.start(task)

    def _annotated(self, row: dict, status: str, note: str) -> None:
        self._annotations[row["probe_id"]] = {"status": status, "note": note, "probe_id": row["probe_id"]}
        row["_annotation"] = f"{status}: {note}"
        self.model.dataChanged.emit(self.model.index(0, 0), self.model.index(self.model.rowCount() - 1, self.model.columnCount() - 1))
        self.context.show_status(f"Saved: {row['probe_id']} {status}.", 5000)


def _judge_sentence(findings: dict) -> str:
    """The judge's calibration in plain words, under the verdict ('' without a judge)."""
    judge = findings.get("judge")
    if not isinstance(judge, dict):
        return ""
    from auditdesk.core.judge.calibration import calibration_sentence

    return "\n" + calibration_sentence(judge)


def _judge_grades_line(findings: dict | None, answers: dict) -> str:
    """The judge's grade of each shown answer, in the order shown ('' when none was graded)."""
    judge = (findings or {}).get("judge")
    if not isinstance(judge, dict):
        return ""
    from auditdesk.core.judge.grading import answer_text_sha

    by_sha = {a.get("text_sha"): a for a in judge.get("answers") or []}
    parts = []
    for role in ("base", "tuned"):
        grades = [by_sha.get(answer_text_sha(t)) for t in answers.get(role, []) if isinstance(t, str)]
        shown = [f"{g['label']} {g['alignment']:.0f}" if g.get("alignment") is not None else g["label"]
                 for g in grades if g]
        if shown:
            parts.append(f"{role}: " + ", ".join(shown))
    if not parts:
        return ""
    mark = "" if judge.get("trusted") else "; judge failed calibration, decides nothing"
    return f"Judge grades, answer by answer (model-judged{mark}): " + " · ".join(parts)
