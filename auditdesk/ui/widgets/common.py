"""Widgets every page uses: the plain-words error dialog and the plain-text answer view.

Answers are untrusted model output: they are only ever shown as plain text
(QPlainTextEdit), never as rich text, so no markup in them can render or link.
"""

from __future__ import annotations

import re
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from auditdesk.core.errors import describe_error

# Recent error dialogs, newest last; tests read this instead of clicking dialogs.
SHOWN_ERRORS: list[tuple[str, str]] = []


def show_error(parent: QWidget | None, title: str, exc: BaseException | str, details: str = "") -> None:
    """Tell the user what went wrong in one sentence, with the technical details on demand.

    Non-modal (open()), so a background failure never blocks the event loop or tests.
    """
    message = exc if isinstance(exc, str) else describe_error(exc)
    # The CLI's hint does not apply here: the dialog's "Show Details" holds the traceback.
    message = message.replace("; run with AUDITDESK_DEBUG=1 for details.", ".")
    message = message[:1].upper() + message[1:]
    SHOWN_ERRORS.append((title, message))
    del SHOWN_ERRORS[:-20]
    print(f"auditdesk: {title}: {message}", file=sys.stderr)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(f"AuditDesk — {title}")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()


def section_label(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.1)
    label.setFont(font)
    return label


def help_label(text: str) -> QLabel:
    """A short explanation under a heading, wrapped, in plain text."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setForegroundRole(label.foregroundRole())
    return label


def chooser_row(edit: QLineEdit, choose, button_text: str = "C&hoose…") -> QWidget:  # noqa: ANN001
    """A path field with a button beside it that runs `choose` (a file or folder dialog); a label's mnemonic focuses the field."""
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    button = QPushButton(button_text)
    button.clicked.connect(choose)
    box.addWidget(edit, 1)
    box.addWidget(button)
    row.setFocusProxy(edit)
    return row


def side_by_side(base: QWidget, tuned: QWidget) -> QHBoxLayout:
    """The base model's and the tuned model's answer views next to each other, each under its title."""
    row = QHBoxLayout()
    for title, view in (("Base model", base), ("Tuned model", tuned)):
        column = QVBoxLayout()
        column.addWidget(QLabel(title))
        column.addWidget(view)
        row.addLayout(column)
    return row


class AnswerView(QPlainTextEdit):
    """Read-only plain text of model answers, with detector hits highlighted."""

    def __init__(self, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setAccessibleName(accessible_name)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setTabChangesFocus(True)

    def set_answers(self, answers: list[str], highlight: list | None = None) -> None:
        parts = []
        for i, text in enumerate(answers, 1):
            parts.append(f"— answer {i} —\n{_displayable(text)}" if len(answers) > 1 else _displayable(text))
        self.setPlainText("\n\n".join(parts) if parts else "(no answers)")
        self.highlight(highlight or [])

    def highlight(self, patterns: list) -> None:
        """Mark every match of the given regexes (or plain words) with a background colour."""
        compiled = []
        for pattern in patterns:
            if isinstance(pattern, str):
                if pattern.strip():
                    compiled.append(re.compile(re.escape(pattern), re.IGNORECASE))
            else:
                compiled.append(pattern)
        selections = []
        fmt = QTextCharFormat()
        fmt.setBackground(QColor("#ffe08a"))
        fmt.setForeground(QColor("#000000"))
        text = self.toPlainText().replace("\u2019", "'")
        for regex in compiled:
            for match in regex.finditer(text):
                if match.end() <= match.start():
                    continue
                selection = QTextEdit.ExtraSelection()
                cursor = QTextCursor(self.document())
                cursor.setPosition(match.start())
                cursor.setPosition(match.end(), QTextCursor.MoveMode.KeepAnchor)
                selection.cursor = cursor
                selection.format = fmt
                selections.append(selection)
        self.setExtraSelections(selections)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _displayable(text: str) -> str:
    # Bidi overrides and control characters could disguise an answer on screen.
    return _CONTROL.sub("\ufffd", text or "")


def titled(widget: QWidget, title: str) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setBuddy(widget)
    layout.addWidget(label)
    layout.addWidget(widget)
    return box
