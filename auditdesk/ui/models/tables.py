"""Qt table models over plain lists of dicts: probes of a pack, probe results, runs.

A view asks only for the visible cells, so thousands of rows scroll smoothly.
These models never query the database or call core work; pages feed them data.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush

from auditdesk.ui.palette import STATUS_COLOURS

Column = tuple[str, Callable[[dict], Any]]
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2


class DictTableModel(QAbstractTableModel):
    """Rows are dicts; columns are (header, getter) pairs."""

    def __init__(self, columns: list[Column], parent=None) -> None:  # noqa: ANN001
        super().__init__(parent)
        self._columns = columns
        self._rows: list[dict] = []

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_data(self, row: int) -> dict:
        return self._rows[row]

    def rows(self) -> list[dict]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._columns[section][0]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        value = self._columns[index.column()][1](row)
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(value)
        if role == SORT_ROLE:
            if isinstance(value, float) and math.isnan(value):
                return float("inf")
            return value if isinstance(value, (int, float)) else ("" if value is None else str(value))
        if role == Qt.ItemDataRole.ToolTipRole:
            return None if value is None else str(value)
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.BackgroundRole and self._columns[index.column()][0] == "Status":
            colour = STATUS_COLOURS.get(row.get("_status", ""))
            return QBrush(colour.lighter(165)) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole and self._columns[index.column()][0] == "Status":
            return QBrush(Qt.GlobalColor.black) if row.get("_status") in STATUS_COLOURS else None
        return None


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


class FilterProxy(QSortFilterProxyModel):
    """Sorts by the raw value (numbers as numbers) and filters on any column's text."""

    def __init__(self, parent=None) -> None:  # noqa: ANN001
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self._only: Callable[[dict], bool] | None = None

    def set_row_filter(self, predicate: Callable[[dict], bool] | None) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 deprecates invalidateFilter
            self.beginFilterChange()
            self._only = predicate
            self.endFilterChange()
        else:
            self._only = predicate
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if self._only is not None and not self._only(model.row_data(source_row)):
            return False
        return super().filterAcceptsRow(source_row, source_parent)

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str(a) < str(b)


PACK_PROBE_COLUMNS: list[Column] = [
    ("Probe", lambda r: r.get("id")),
    ("Category", lambda r: r.get("category")),
    ("Kind", lambda r: r.get("kind")),
    ("Question", lambda r: r.get("text")),
]

RESULT_COLUMNS: list[Column] = [
    ("Probe", lambda r: r.get("probe_id")),
    ("Category", lambda r: r.get("category")),
    ("Status", lambda r: r.get("_status_text")),
    ("Divergence", lambda r: r.get("divergence")),
    ("q-value", lambda r: r.get("q_value")),
    ("Kind", lambda r: r.get("kind")),
    ("Note", lambda r: r.get("_annotation")),
    ("Question", lambda r: r.get("_question")),
]
DIVERGENCE_COLUMN = 3

RUN_COLUMNS: list[Column] = [
    ("Run", lambda r: r.get("id")),
    ("Status", lambda r: r.get("status")),
    ("Started", lambda r: (r.get("started") or r.get("created") or "")[:16].replace("T", " ")),
    ("Answers", lambda r: f"{r.get('units_done', 0)} / {r.get('units_planned', 0)}"),
    ("Base model", lambda r: _name(r.get("base_model"))),
    ("Tuned model", lambda r: _name(r.get("tuned_model") or r.get("lora_adapter"))),
    ("Packs", lambda r: ", ".join(r.get("packs") or [])),
]


def _name(path: str | None) -> str:
    if not path:
        return ""
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]
