"""The window's colours: traffic lights for findings statuses and one colour per model role."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Traffic lights over findings_contract's statuses: concerning / changed, not concerning / no change.
STATUS_COLOURS = {
    "concerning": QColor("#d64541"),
    "changed": QColor("#e8a33d"),
    "unchanged": QColor("#3aa65b"),
    "unknown": QColor("#8a8a8a"),
}
ROLE_COLOURS = {"base": QColor("#3f7fbf"), "tuned": QColor("#d9722b")}
