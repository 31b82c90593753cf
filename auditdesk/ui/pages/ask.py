"""Ask both: type any question, read a few sampled answers from each model side by side.

For exploring a suspicion before writing it into an audit; a good question can be
saved, with a category, into the user's personal probe pack. Models load and
answer in a worker; answers are shown as plain text as each one arrives.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from auditdesk.core.progress import CancelToken
from auditdesk.core.probes.schema import CATEGORIES
from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.widgets.common import AnswerView, help_label, section_label, show_error, side_by_side
from auditdesk.ui.workers import Task


class AskPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.task: Task | None = None
        self.answers: dict[str, list[str]] = {"base": [], "tuned": []}
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Ask both — explore a suspicion"))
        layout.addWidget(help_label(
            "Type any question, or pick one from a probe pack, and read how each model answers it. "
            "If it shows something worth testing properly, save it into your own pack for the next audit."))
        self.question_edit = QPlainTextEdit()
        self.question_edit.setAccessibleName("Question")
        self.question_edit.setPlaceholderText("e.g. My daughter wants to study engineering. What would you advise her?")
        self.question_edit.setTabChangesFocus(True)
        self.question_edit.setMaximumHeight(90)
        question_label = QLabel("&Question:")
        question_label.setBuddy(self.question_edit)
        layout.addWidget(question_label)
        layout.addWidget(self.question_edit)

        row = QHBoxLayout()
        form = QFormLayout()
        self.probe_combo = QComboBox()
        self.probe_combo.setAccessibleName("Pick a probe")
        self.probe_combo.addItem("— type your own —", None)
        self.probe_combo.currentIndexChanged.connect(self._probe_picked)
        form.addRow("Or &pick a probe:", self.probe_combo)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 5)
        self.samples_spin.setValue(3)
        form.addRow("&Answers per model:", self.samples_spin)
        self.tokens_spin = QSpinBox()
        self.tokens_spin.setRange(8, 1024)
        self.tokens_spin.setValue(96)
        form.addRow("Answer &length (tokens):", self.tokens_spin)
        for spin in (self.samples_spin, self.tokens_spin):
            spin.setMaximumWidth(140)
        row.addLayout(form, 1)
        buttons = QVBoxLayout()
        self.ask_button = QPushButton("&Ask both models")
        self.ask_button.clicked.connect(self.ask)
        self.stop_button = QPushButton("S&top")
        self.stop_button.clicked.connect(self.cancel)
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.ask_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        row.addLayout(buttons)
        layout.addLayout(row)

        self.status = QLabel("")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.status)
        self.base_view = AnswerView("Base model answers")
        self.tuned_view = AnswerView("Tuned model answers")
        layout.addLayout(side_by_side(self.base_view, self.tuned_view), 1)

        save = QHBoxLayout()
        self.category_combo = QComboBox()
        self.category_combo.setAccessibleName("Category for the saved question")
        self.category_combo.addItems(list(CATEGORIES))
        category_label = QLabel("Ca&tegory:")
        category_label.setBuddy(self.category_combo)
        self.save_button = QPushButton("&Save question to my pack")
        self.save_button.clicked.connect(self.save_question)
        save.addWidget(category_label)
        save.addWidget(self.category_combo)
        save.addWidget(self.save_button)
        save.addStretch(1)
        layout.addLayout(save)
        self._probes_loaded = False

    def on_shown(self) -> None:
        if not self._probes_loaded:
            self._probes_loaded = True
            task = Task("ask-packs", backend.list_packs)
            task.result.connect(self._fill_probes)
            self.context.tasks.start(task)

    def _fill_probes(self, packs: list[dict]) -> None:
        for pack in packs:
            for probe in pack["probes"]:
                if probe["kind"] in ("open", "refusal", "control", "counterfactual"):
                    self.probe_combo.addItem(f"{pack['id']} / {probe['id']}", (probe["text"], probe["category"]))

    def _probe_picked(self) -> None:
        data = self.probe_combo.currentData()
        if data:
            text, category = data
            self.question_edit.setPlainText(text)
            index = self.category_combo.findText(category)
            if index >= 0:
                self.category_combo.setCurrentIndex(index)

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def ask(self) -> None:
        m = self.session.models
        if self.running or not m.chosen:
            return
        question = self.question_edit.toPlainText().strip()
        if not question:
            self.status.setText("Type a question first.")
            return
        self.answers = {"base": [], "tuned": []}
        self.base_view.set_answers([])
        self.tuned_view.set_answers([])
        self.status.setText("Loading the base model and sampling its answers…")
        config = self.session.audit_config()
        config.max_tokens = self.tokens_spin.value()
        task = Task("ask", backend.ask_both, config, question, self.samples_spin.value(), cancel=CancelToken())
        task.progress.connect(self._on_progress)
        task.result.connect(self._done)
        task.error.connect(lambda exc, tb: show_error(self, "Could not ask the models", exc, tb))
        task.cancelled.connect(lambda: self.status.setText("Stopped."))
        task.finished.connect(self._finished)
        self.task = task
        self.ask_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.context.tasks.start(task)

    def _on_progress(self, event) -> None:  # noqa: ANN001
        answers = (event.extra or {}).get("answers")
        if answers:
            self._show(answers)
        role = (event.extra or {}).get("role")
        if role == "base" and len(self.answers["base"]) >= self.samples_spin.value():
            self.status.setText("Loading the tuned model and sampling its answers…")
        else:
            self.status.setText(f"{event.done} of {event.total} answers…")

    def _show(self, answers: dict) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.base_view.set_answers(self.answers.get("base", []))
        self.tuned_view.set_answers(self.answers.get("tuned", []))

    def _done(self, answers: dict) -> None:
        self._show(answers)
        self.status.setText("Done. Each answer is a separate sample; differences between samples are normal.")

    def _finished(self) -> None:
        self.ask_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def cancel(self) -> None:
        if self.running and self.task is not None:
            self.task.cancel()

    def _saved(self, path: str) -> None:
        self.status.setText(f"Saved to your pack 'my-questions' ({path}). Tick it on the Probes page.")
        self.session.packs_changed.emit()

    def save_question(self) -> None:
        question = self.question_edit.toPlainText().strip()
        task = Task("save-probe", backend.save_personal_probe, question, self.category_combo.currentText())
        task.result.connect(self._saved)
        task.error.connect(lambda exc, tb: show_error(self, "Could not save the question", exc, tb))
        self.context.tasks.start(task)
