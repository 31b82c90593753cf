"""Dialogs for signing a report and verifying one: thin views over auditdesk.core.evidence.

The passphrase lives in a local variable for the one call that opens the key; it
is never written to settings, logs or the window's state.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from auditdesk.ui import backend
from auditdesk.ui.widgets.common import chooser_row, help_label, show_error
from auditdesk.ui.workers import Task

_COLOURS = {"PASS": "#15803D", "FAIL": "#B91C1C", "INFO": "#4B5563"}


class SignDialog(QDialog):
    """Asks for the PKCS#12 key file, its passphrase, and the name and role to show."""

    def __init__(self, parent: QWidget | None, *, default_name: str = "", default_role: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("AuditDesk — Sign the report")
        layout = QVBoxLayout(self)
        layout.addWidget(help_label(
            "Choose your signing key (a .p12 file; make one with `auditdesk keys new`). The signature fills the "
            "first empty box of the sign-off block; earlier signatures stay valid. The passphrase is not stored."))
        form = QFormLayout()
        self.key_edit = QLineEdit()
        self.key_edit.setAccessibleName("Signing key file")
        form.addRow("&Key file:", chooser_row(self.key_edit, self.choose_key))
        self.passphrase_edit = QLineEdit()
        self.passphrase_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase_edit.setAccessibleName("Passphrase")
        form.addRow("&Passphrase:", self.passphrase_edit)
        self.name_edit = QLineEdit(default_name)
        self.name_edit.setPlaceholderText("from the certificate")
        form.addRow("&Name shown:", self.name_edit)
        self.role_edit = QLineEdit(default_role)
        self.role_edit.setPlaceholderText("Auditor, or Reviewer / approver")
        form.addRow("&Role shown:", self.role_edit)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Sign")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def choose_key(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Signing key", "", "PKCS#12 key (*.p12 *.pfx);;All files (*)")
        if path:
            self.key_edit.setText(path)

    def take_passphrase(self) -> str:
        """The passphrase, cleared from the dialog as it is handed over."""
        text = self.passphrase_edit.text()
        self.passphrase_edit.clear()
        return text


class VerifyDialog(QDialog):
    """File → Verify a report: choose a PDF (and its evidence), see each check pass or fail."""

    def __init__(self, parent: QWidget | None, tasks, pdf: str = "") -> None:  # noqa: ANN001
        super().__init__(parent)
        self.tasks = tasks
        self.result = None
        self.setWindowTitle("AuditDesk — Verify a report")
        self.resize(820, 520)
        layout = QVBoxLayout(self)
        layout.addWidget(help_label(
            "Checks that each digital signature is intact and covers the document, that nothing was added after "
            "signing, and — with the evidence folder or bundle — that every file matches the report's manifest."))
        form = QFormLayout()
        self.pdf_edit = QLineEdit(pdf)
        self.pdf_edit.setAccessibleName("Report to verify")
        form.addRow("&Report:", chooser_row(self.pdf_edit, self.choose_pdf, "Choose…"))
        self.evidence_edit = QLineEdit()
        self.evidence_edit.setAccessibleName("Evidence folder or bundle")
        self.evidence_edit.setPlaceholderText("optional: the folder or .zip with the findings, answers and packs")
        form.addRow("&Evidence:", chooser_row(self.evidence_edit, self.choose_evidence, "Choose…"))
        layout.addLayout(form)
        self.verify_button = QPushButton("&Verify")
        self.verify_button.clicked.connect(self.verify)
        layout.addWidget(self.verify_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.checks = QTreeWidget()
        self.checks.setHeaderLabels(["", "Check", "Result"])
        self.checks.setRootIsDecorated(False)
        self.checks.setWordWrap(True)
        self.checks.setAccessibleName("Verification checks")
        self.checks.setColumnWidth(0, 50)
        self.checks.setColumnWidth(1, 220)
        layout.addWidget(self.checks, 1)
        # Details are whole sentences: the selected check is shown in full below the list.
        self.detail = QLabel("")
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setAccessibleName("Selected check in full")
        layout.addWidget(self.detail)
        self.checks.currentItemChanged.connect(
            lambda item, _old: self.detail.setText(f"{item.text(1)}: {item.text(2)}" if item else ""))
        self.summary = QLabel("")
        self.summary.setStyleSheet("font-weight: bold")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)

    def choose_pdf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Report to verify", "", "PDF report (*.pdf)")
        if path:
            self.pdf_edit.setText(path)

    def choose_evidence(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Evidence bundle", "", "Evidence bundle (*.zip)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Evidence folder")
        if path:
            self.evidence_edit.setText(path)

    def verify(self) -> None:
        if not self.pdf_edit.text().strip():
            self.summary.setText("Choose the report to verify first.")
            return
        self.verify_button.setEnabled(False)
        self.summary.setText("Checking…")
        task = Task("verify", backend.verify_report_file, self.pdf_edit.text().strip(), self.evidence_edit.text().strip())
        task.result.connect(self.show_result)
        task.error.connect(lambda exc, details: show_error(self, "Could not verify the report", exc, details))
        task.finished.connect(lambda: self.verify_button.setEnabled(True))
        self.tasks.start(task)

    def show_result(self, result) -> None:  # noqa: ANN001
        from PySide6.QtGui import QColor

        self.result = result
        self.checks.clear()
        for check in result.checks:
            item = QTreeWidgetItem([check.word, check.name, check.detail])
            item.setForeground(0, QColor(_COLOURS[check.word]))
            item.setToolTip(2, check.detail)
            self.checks.addTopLevelItem(item)
        failed = sum(1 for c in result.checks if c.passed is False)
        first = next((i for i, c in enumerate(result.checks) if c.passed is False), 0)
        if self.checks.topLevelItemCount():
            self.checks.setCurrentItem(self.checks.topLevelItem(first))  # the first failure, else the first check
        self.summary.setText(f"VERIFIED: every check passed for {result.path.name}." if result.ok
                             else f"NOT VERIFIED: {failed} check(s) failed for {result.path.name}.")
