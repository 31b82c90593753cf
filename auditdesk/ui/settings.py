"""The window's persistent settings (QSettings), typed: each value with its type and default.

Pages receive a `WindowSettings`; none imports the app module to reach them.
"""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import QSettings

ORGANISATION = "AuditDesk"
APPLICATION = "AuditDesk"
T = TypeVar("T", int, float, str)


class WindowSettings:
    """Typed access to the window's settings file; `value`/`setValue` for the raw ones (geometry)."""

    def __init__(self, backing: QSettings | None = None) -> None:
        self._backing = backing or QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                             ORGANISATION, APPLICATION)

    def get(self, key: str, default: T) -> T:
        """The stored value as the default's type, or the default when it is missing or malformed."""
        value = self._backing.value(key, default)
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def value(self, key: str, default=None):  # noqa: ANN001, ANN201 - QSettings' own signature
        return self._backing.value(key, default)

    def setValue(self, key: str, value) -> None:  # noqa: ANN001, N802 - QSettings' own name
        self._backing.setValue(key, value)


def settings() -> WindowSettings:
    """The window's persistent settings (geometry, last folders, engine and sampling settings)."""
    return WindowSettings()
