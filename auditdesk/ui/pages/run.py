"""Step 3, Run: start, watch, pause, resume or cancel the audit.

The audit runs in one worker (plan → answers → analysis); this page shows its
throttled progress events, including the latest answers of both models.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from auditdesk.core.progress import CancelToken
from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.widgets.common import AnswerView, chooser_row, help_label, section_label, show_error, side_by_side
from auditdesk.ui.workers import Task


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RunPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.task: Task | None = None
        self.token: CancelToken | None = None
        self.run_id: int | None = None
        self.last_tokens_per_second: float | None = None

        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Step 3 — Ask both models every question"))
        self.summary = help_label("")
        layout.addWidget(self.summary)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("&Start audit")
        self.start_button.setToolTip("Ctrl+R")
        self.start_button.clicked.connect(self.start_run)
        self.pause_button = QPushButton("&Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setToolTip("Esc — everything answered so far is kept and the audit can be resumed")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("&Resume audit")
        self.resume_button.clicked.connect(lambda: self.resume_run(self.run_id))
        for button in (self.start_button, self.pause_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.results_button = QPushButton("See the &results →")
        self.results_button.clicked.connect(lambda: self.context.go("results"))
        buttons.addWidget(self.results_button)
        layout.addLayout(buttons)

        layout.addWidget(self._judge_box())

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Audit progress")
        self.progress.setFormat("%v of %m answers")
        layout.addWidget(self.progress)
        self.status = QLabel("Not started.")
        self.status.setAccessibleName("Audit status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        latest = QGroupBox("A recently answered question")
        latest_layout = QVBoxLayout(latest)
        self.question = QLabel("—")
        self.question.setTextFormat(Qt.TextFormat.PlainText)  # the prompt may carry markup-like text
        self.question.setWordWrap(True)
        self.question.setAccessibleName("Recently answered question")
        latest_layout.addWidget(self.question)
        self.base_answer = AnswerView("Latest base model answer")
        self.tuned_answer = AnswerView("Latest tuned model answer")
        latest_layout.addLayout(side_by_side(self.base_answer, self.tuned_answer))
        layout.addWidget(latest, 1)

        self.session.models_changed.connect(self._refresh)
        self.session.probes_changed.connect(self._refresh)
        self.session.run_changed.connect(self._refresh)
        self._refresh()

    def _judge_box(self) -> QGroupBox:
        """The optional model judge: a GGUF file that grades the answers after the run."""
        from PySide6.QtWidgets import QFileDialog, QLineEdit

        box = QGroupBox("Model judge (optional)")
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(help_label(
            "A third model can grade the answers for alignment and coherence. It is first tested on answers "
            "whose right grade is known; if it gets too many wrong, its grades are shown but decide nothing. "
            "Leave this empty for no judge: the results are then exactly the same as without one."))
        self.judge_edit = QLineEdit()
        self.judge_edit.setPlaceholderText("No judge — choose a GGUF model file to use one")
        self.judge_edit.setAccessibleName("Judge model file")

        def choose() -> None:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a judge model", "", "GGUF models (*.gguf)")
            if path:
                self.judge_edit.setText(path)

        box_layout.addWidget(chooser_row(self.judge_edit, choose, "Choose judge…"))
        return box

    def judge_path(self) -> str | None:
        """The judge model file chosen, or None (no judge)."""
        text = self.judge_edit.text().strip()
        return text or None

    # -- state -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def _refresh(self) -> None:
        s = self.session
        m = s.models
        if m.chosen:
            tuned = f"{m.tuned.name} (LoRA adapter on the base)" if m.tuned_is_adapter else m.tuned.name
            base = m.base.name
            if m.base_server:
                base, tuned = f"{m.base} on {m.base_server}", f"{m.tuned} on {m.tuned_server}"
            self.summary.setText(
                f"Base: {base}   •   Tuned: {tuned}\n"
                f"Packs: {', '.join(s.probes.packs) or 'none'}   •   {s.probes.samples} samples per question, "
                f"up to {s.probes.max_tokens} tokens each, seed {s.probes.seed}.")
        running = self.running
        paused = bool(self.token and self.token.paused)
        self.start_button.setEnabled(not running and s.probes_ready)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("&Continue" if paused else "&Pause")
        self.cancel_button.setEnabled(running)
        resumable = self.run_id is not None and s.run_status in ("cancelled", "failed", "paused", "running")
        self.resume_button.setVisible(resumable and not running)
        self.results_button.setEnabled(s.run_ready)

    # -- actions ----------------------------------------------------------------------
    def start_run(self) -> None:
        if self.running or not self.session.probes_ready:
            return
        config = self.session.audit_config()
        self.status.setText("Measuring both models' speed to estimate how long the audit takes…")
        task = Task("estimate", backend.estimate, config)
        task.result.connect(lambda estimate: self._confirm_and_start(config, estimate))
        task.error.connect(lambda exc, tb: show_error(self, "Cannot start the audit", exc, tb))
        self.context.tasks.start(task)

    def _confirm_and_start(self, config, estimate: dict) -> None:  # noqa: ANN001
        from auditdesk.core.audit_job import format_duration

        duration = format_duration(estimate["seconds"])
        if estimate["seconds"] > 3600 and not self.confirm_long_run(duration):
            self.status.setText(f"Not started: the audit would take {duration}. Choose fewer packs or samples.")
            return
        self.run_id = None
        self._launch(Task("audit", backend.run_audit, str(self.session.db_path), config=config, cancel=CancelToken(),
                          judge=self.judge_path()))
        self.status.setText(f"Starting (estimated {duration} on this computer): planning the audit…")

    def confirm_long_run(self, duration: str) -> bool:
        """Ask before an audit estimated over an hour."""
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "A long audit", f"This audit is estimated to take {duration} on this "
                                      "computer. Start it anyway?")
        return answer == QMessageBox.StandardButton.Yes

    def resume_run(self, run_id: int | None) -> None:
        if run_id is None or self.running:
            return
        self.run_id = run_id
        self._launch(Task("audit", backend.run_audit, str(self.session.db_path), run_id=run_id, cancel=CancelToken(),
                          judge=self.judge_path()))
        self.status.setText(f"Resuming audit {run_id}: checking the model files have not changed…")

    def _launch(self, task: Task) -> None:
        self.task = task
        self.token = task.token
        self.progress.setRange(0, 0)
        self.base_answer.set_answers([])
        self.tuned_answer.set_answers([])
        task.progress.connect(self._on_progress)
        task.result.connect(self._on_done)
        task.error.connect(self._on_error)
        task.cancelled.connect(self._on_cancelled)
        task.finished.connect(self._refresh)
        self.context.tasks.start(task)
        self._refresh()

    def toggle_pause(self) -> None:
        if not self.running or self.token is None:
            return
        if self.token.paused:
            self.token.resume()
            self.status.setText("Continuing…")
        else:
            self.token.pause()
            self.status.setText("Paused after the current answer. Press Continue to go on.")
        self._refresh()

    def cancel(self) -> None:
        if self.running and self.token is not None:
            self.token.cancel()
            self.status.setText("Stopping after the current answer…")

    # -- events from the worker ----------------------------------------------------------
    def _on_progress(self, event) -> None:  # noqa: ANN001
        extra = event.extra or {}
        if extra.get("run_id") is not None and self.run_id != extra["run_id"]:
            self.run_id = int(extra["run_id"])
            self.session.set_run(self.run_id, "running")
        if event.stage in ("planned", "generate", "likelihood"):
            self.progress.setRange(0, max(1, event.total))
            self.progress.setValue(event.done)
            self.progress.setFormat("%v of %m answers")
            speed = f"{event.tokens_per_second:.1f} tokens/s" if event.tokens_per_second else "measuring speed…"
            paused = " (paused)" if self.token and self.token.paused else ""
            self.status.setText(f"Audit {self.run_id}: {event.done} of {event.total} answers • {speed} • "
                                f"time left: {_eta(event.eta_seconds)}{paused}\n{event.message}")
        else:
            # Analysis and other stages after the answers are collected.
            self.progress.setRange(0, max(1, event.total) if event.total else 0)
            self.progress.setValue(event.done)
            self.progress.setFormat("%p%")
            self.status.setText(event.message or f"{event.stage}…")
        if "live_question" in extra:
            # The panel refreshes a few times a second, so it names its own probe
            # rather than trusting the status line above to match it.
            probe = f"{extra['live_probe']}: " if extra.get("live_probe") else ""
            self.question.setText(probe + extra["live_question"])
            for role, view in (("base", self.base_answer), ("tuned", self.tuned_answer)):
                if f"live_{role}" in extra:
                    view.set_answers([extra[f"live_{role}"]])
                else:
                    # Each model answers every question in turn: the base first, then the tuned one.
                    view.setPlainText(f"(the {role} model answers this question in its turn; "
                                      "the base model goes first, then the tuned model)")

    def _on_done(self, result: dict) -> None:
        self.run_id = int(result["run_id"])
        self.session.set_run(self.run_id, "completed")
        self.session.set_findings(result.get("findings"))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        note = "" if result.get("findings") is not None else " (the analysis is not available in this build; answers are stored)"
        self.status.setText(f"Audit {self.run_id} finished{note}. See the results (Ctrl+4).")
        self.context.show_status(f"Audit {self.run_id} finished.", 10000)

    def _on_cancelled(self) -> None:
        self.session.set_run(self.run_id, "cancelled")
        self.progress.setRange(0, max(1, self.progress.maximum()))
        self.status.setText(f"Audit {self.run_id} was cancelled. Everything answered so far is kept; "
                            "press Resume audit to continue it now or later.")

    def _on_error(self, exc: BaseException, details: str) -> None:
        if self.run_id is not None:
            self.session.set_run(self.run_id, "failed")
        self.progress.setRange(0, max(1, self.progress.maximum()))
        self.status.setText("The audit stopped because of a problem; answers already stored are kept.")
        show_error(self, "The audit stopped", exc, details)
