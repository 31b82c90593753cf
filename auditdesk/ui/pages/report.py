"""Step 5, Report: who audited for whom, then export the PDF, JSON and CSV.

The export runs in a worker (reportlab and the answers CSV can take seconds);
this page only collects the cover fields and opens what was written.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.context import PageContext
from auditdesk.ui.widgets.common import chooser_row, help_label, section_label, show_error
from auditdesk.ui.workers import Task


class ReportPage(QWidget):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.session = context.session
        self.written: list[str] = []
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Step 5 — The report to sign and hand on"))
        layout.addWidget(help_label(
            "Fill in who the audit is for and who did it; these appear on the cover. Your confirmed and dismissed "
            "findings from the Results page are included as analyst notes."))
        form = QFormLayout()
        self.org_edit = QLineEdit()
        self.org_edit.setAccessibleName("Organisation")
        form.addRow("&Organisation:", self.org_edit)
        self.auditor_edit = QLineEdit()
        self.auditor_edit.setAccessibleName("Auditor")
        form.addRow("&Auditor:", self.auditor_edit)
        self.notes_edit = QPlainTextEdit()
        self.notes_edit.setAccessibleName("Notes for the report")
        self.notes_edit.setTabChangesFocus(True)
        self.notes_edit.setMaximumHeight(120)
        form.addRow("&Notes:", self.notes_edit)
        self.folder_edit = QLineEdit()
        self.folder_edit.setAccessibleName("Output folder")
        form.addRow("Save in &folder:", chooser_row(self.folder_edit, self.choose_folder))
        formats = QHBoxLayout()
        self.pdf_check = QCheckBox("&PDF report")
        self.json_check = QCheckBox("&JSON findings")
        self.csv_check = QCheckBox("C&SV of every answer")
        for check in (self.pdf_check, self.json_check, self.csv_check):
            check.setChecked(True)
            formats.addWidget(check)
        formats.addStretch(1)
        form.addRow("Files:", formats)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        self.export_button = QPushButton("&Export")
        self.export_button.clicked.connect(self.export)
        buttons.addWidget(self.export_button)
        self.open_button = QPushButton("Open the &report")
        self.open_button.clicked.connect(self.open_report)
        self.open_button.setEnabled(False)
        buttons.addWidget(self.open_button)
        self.sign_button = QPushButton("&Sign the report…")
        self.sign_button.setToolTip("Add your digital signature to the exported PDF (a .p12 key; the passphrase is not stored)")
        self.sign_button.clicked.connect(self.sign)
        self.sign_button.setEnabled(False)
        buttons.addWidget(self.sign_button)
        self.verify_button = QPushButton("&Verify…")
        self.verify_button.clicked.connect(lambda: self.context.verify_report(self._pdf() or ""))
        buttons.addWidget(self.verify_button)
        self.folder_button = QPushButton("Open the fo&lder")
        self.folder_button.clicked.connect(self.open_folder)
        self.folder_button.setEnabled(False)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress.setAccessibleName("Export progress")
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.files = QListWidget()
        self.files.setAccessibleName("Written files")
        self.files.itemActivated.connect(lambda item: QDesktopServices.openUrl(QUrl.fromLocalFile(item.text())))
        layout.addWidget(self.files, 1)
        self._load_settings()

    def _load_settings(self) -> None:
        s = self.context.settings
        self.org_edit.setText(str(s.value("report/organisation", "")))
        self.auditor_edit.setText(str(s.value("report/auditor", "")))
        self.folder_edit.setText(str(s.value("folders/reports", str(Path.home() / "AuditDesk reports"))))

    def save_settings(self) -> None:
        s = self.context.settings
        s.setValue("report/organisation", self.org_edit.text())
        s.setValue("report/auditor", self.auditor_edit.text())
        s.setValue("folders/reports", self.folder_edit.text())

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the report in", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def formats(self) -> list[str]:
        return [fmt for fmt, check in (("pdf", self.pdf_check), ("json", self.json_check), ("csv", self.csv_check)) if check.isChecked()]

    def export(self) -> None:
        run_id = self.session.run_id
        if run_id is None:
            return
        self.save_settings()
        meta = {"organisation": self.org_edit.text(), "auditor": self.auditor_edit.text(), "notes": self.notes_edit.toPlainText()}
        self.export_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Writing the report…")
        task = Task("export", backend.export_report, str(self.session.db_path), run_id, self.folder_edit.text(), self.formats(), meta)
        task.progress.connect(self._on_progress)
        task.result.connect(self._exported)
        task.error.connect(self._failed)
        task.finished.connect(lambda: (self.export_button.setEnabled(True), self.progress.setVisible(False)))
        self.context.tasks.start(task)

    def _on_progress(self, event) -> None:  # noqa: ANN001
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        if event.message:
            self.status.setText(event.message)

    def _exported(self, paths: list[str]) -> None:
        self.written = paths
        self.files.clear()
        self.files.addItems(paths)
        self.status.setText(f"Written {len(paths)} file(s). Double-click a file to open it.")
        self.open_button.setEnabled(any(p.endswith(".pdf") for p in paths))
        self.sign_button.setEnabled(any(p.endswith(".pdf") for p in paths))
        self.folder_button.setEnabled(bool(paths))

    def _failed(self, exc: BaseException, details: str) -> None:
        self.status.setText("The report was not written.")
        show_error(self, "Could not write the report", exc, details)

    def _pdf(self) -> str | None:
        return next((p for p in self.written if p.endswith(".pdf")), None)

    def sign(self) -> None:
        """Ask for the key and passphrase, then sign the exported PDF in a worker."""
        from auditdesk.ui.widgets.evidence import SignDialog

        pdf = self._pdf()
        if not pdf:
            return
        self.sign_dialog = SignDialog(self, default_name=self.auditor_edit.text())
        self.sign_dialog.accepted.connect(lambda: self._sign_with(pdf, self.sign_dialog))
        self.sign_dialog.open()

    def _sign_with(self, pdf: str, dialog) -> None:  # noqa: ANN001
        self.sign_button.setEnabled(False)
        self.status.setText("Signing the report…")
        task = Task("sign", backend.sign_report_file, pdf, dialog.key_edit.text(), dialog.take_passphrase(),
                    dialog.name_edit.text(), dialog.role_edit.text())
        task.result.connect(lambda path: self.status.setText(
            f"Signed: {path}. Use Verify… to check it, or sign again as the reviewer."))
        task.error.connect(self._sign_failed)
        task.finished.connect(lambda: self.sign_button.setEnabled(True))
        self.context.tasks.start(task)

    def _sign_failed(self, exc: BaseException, details: str) -> None:
        self.status.setText("The report was not signed; the file is unchanged.")
        show_error(self, "Could not sign the report", exc, details)

    def open_report(self) -> None:
        pdf = self._pdf()
        if pdf:
            QDesktopServices.openUrl(QUrl.fromLocalFile(pdf))

    def open_folder(self) -> None:
        if self.written:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.written[0]).parent)))
