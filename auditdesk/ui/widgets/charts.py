"""Small charts drawn with QPainter: weight change per layer, category traffic lights, cluster map.

They only draw the plain data they are given and emit clicks; they never read
the database or call core work. Colours come from the palette except the
traffic lights, which mean something.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from auditdesk.core.findings_contract import CLOSE_CALL_WORDS, STATUS_WORDS, category_status, status_light
from auditdesk.ui.palette import ROLE_COLOURS, STATUS_COLOURS

STATUS_WORDS_LOWER = {status: words.lower() for status, words in STATUS_WORDS.items()}



class WeightChangeChart(QWidget):
    """Bars, one per layer (or adapter target): how much the vendor changed the weights."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layers: list[tuple[str, float]] = []
        self._title = ""
        self._empty = "Choose two models to see where the weights changed."
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAccessibleName("Where the weights changed")

    def set_data(self, layers: list[tuple[str, float]], title: str = "", empty_text: str | None = None) -> None:
        self._layers = [(str(name), float(value)) for name, value in layers]
        self._title = title
        if empty_text is not None:
            self._empty = empty_text
        self.setToolTip(title)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(420, 160)

    def paintEvent(self, event) -> None:  # noqa: N802, ANN001
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        rect = self.rect().adjusted(8, 8, -8, -8)
        fm = QFontMetrics(self.font())
        painter.setPen(pal.color(QPalette.ColorRole.WindowText))
        if not self._layers:
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._empty)
            return
        if self._title:
            painter.drawText(rect.left(), rect.top() + fm.ascent(), self._title)
            rect.setTop(rect.top() + fm.height() + 4)
        axis_h = fm.height() + 2
        plot = QRectF(rect.left(), rect.top(), rect.width(), rect.height() - axis_h)
        peak = max((v for _, v in self._layers), default=0.0) or 1.0
        n = len(self._layers)
        gap = 2 if n < 60 else 0
        width = max(1.0, (plot.width() - gap * (n - 1)) / n)
        colour = pal.color(QPalette.ColorRole.Highlight)
        for i, (_, value) in enumerate(self._layers):
            h = plot.height() * (value / peak)
            x = plot.left() + i * (width + gap)
            painter.fillRect(QRectF(x, plot.bottom() - h, width, h), colour)
        painter.setPen(pal.color(QPalette.ColorRole.WindowText))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        first, last = self._layers[0][0], self._layers[-1][0]
        painter.drawText(QRectF(rect.left(), plot.bottom() + 2, rect.width() / 2, axis_h), Qt.AlignmentFlag.AlignLeft, _short(first))
        painter.drawText(QRectF(rect.center().x(), plot.bottom() + 2, rect.width() / 2, axis_h), Qt.AlignmentFlag.AlignRight, _short(last))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802, ANN001
        if not self._layers:
            return
        n = len(self._layers)
        i = int((event.position().x() - 8) / max(1.0, (self.width() - 16) / n))
        if 0 <= i < n:
            name, value = self._layers[i]
            QToolTip.showText(event.globalPosition().toPoint(), f"{name}: {value:.4g}", self)


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


class CategoryStrip(QWidget):
    """One row per category: a traffic-light bar whose length is the score behind its status.

    Concerning: the concern score; changed: the change score; unchanged: a stub. The
    scale is fixed (a score of 1 fills the bar), so a small score that decided nothing
    never fills the bar because every other category's is smaller still."""

    category_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[dict] = []
        self.setAccessibleName("Category summary")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_categories(self, categories: list[dict]) -> None:
        self._rows = list(categories)
        self.setFixedHeight(max(40, self._row_height() * max(1, len(self._rows)) + 30))
        lines = [f"{c.get('category')}: {_status_words(c)}" for c in self._rows]
        self.setAccessibleDescription("; ".join(lines))
        self.update()

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + 8

    def paintEvent(self, event) -> None:  # noqa: N802, ANN001
        painter = QPainter(self)
        pal = self.palette()
        fm = QFontMetrics(self.font())
        text_colour = pal.color(QPalette.ColorRole.WindowText)
        if not self._rows:
            painter.setPen(text_colour)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No analysis yet.")
            return
        label_w = max(fm.horizontalAdvance(str(c.get("category", ""))) for c in self._rows) + 16
        status_w = max(fm.horizontalAdvance(_status_words(c)) for c in self._rows) + 16
        bar_w = max(40, self.width() - label_w - status_w - 16)
        rh = self._row_height()
        y = 4
        for row in self._rows:
            status = category_status(row)
            painter.setPen(text_colour)
            painter.drawText(QRectF(4, y, label_w, rh), Qt.AlignmentFlag.AlignVCenter, str(row.get("category", "")))
            length = max(6.0, bar_w * min(1.0, _score(row)))
            painter.fillRect(QRectF(label_w, y + 3, length, rh - 6), STATUS_COLOURS[status_light(status, row)])
            painter.drawText(QRectF(label_w + bar_w + 8, y, status_w, rh), Qt.AlignmentFlag.AlignVCenter, _status_words(row))
            y += rh
        # Legend, so colour is never the only carrier of meaning.
        painter.setPen(text_colour)
        x = 4
        for key in ("concerning", "changed", "unchanged"):
            painter.fillRect(QRectF(x, y + 8, 12, 12), STATUS_COLOURS[key])
            painter.drawText(QRectF(x + 16, y + 2, 400, rh), Qt.AlignmentFlag.AlignVCenter, STATUS_WORDS_LOWER[key])
            x += 16 + fm.horizontalAdvance(STATUS_WORDS_LOWER[key]) + 20

    def mousePressEvent(self, event) -> None:  # noqa: N802, ANN001
        i = int((event.position().y() - 4) // self._row_height())
        if 0 <= i < len(self._rows):
            self.category_clicked.emit(str(self._rows[i].get("category", "")))


def _status_words(category: dict) -> str:
    """The status in words; a close call (significant alone, not after the correction) says so."""
    words = STATUS_WORDS_LOWER[category_status(category)]
    return f"{words}; {CLOSE_CALL_WORDS}" if category.get("close_call") else words


def _score(category: dict) -> float:
    """The score behind the category's status (a close call: its concern score), 0 for no change."""
    status = category_status(category)
    key = "concern_score" if category.get("close_call") else {"concerning": "concern_score", "changed": "change_score"}.get(status)
    value = category.get(key) if key else 0.0
    if isinstance(value, (int, float)) and math.isfinite(value):
        return max(0.0, float(value))
    return 0.0


class ClusterMap(QWidget):
    """Answers of both models as points in 2-D; click a point to read its answer.

    Points are dicts with x, y, role ('base'/'tuned'), cluster and an answer id;
    clusters whose members are almost all from the tuned model are outlined.
    """

    point_clicked = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: list[dict] = []
        self._tuned_only: set = set()
        self._selected: int | None = None
        self.setMinimumSize(240, 200)
        self.setAccessibleName("Cluster map of answers")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def set_points(self, points: list[dict], tuned_only_clusters: set | None = None) -> None:
        self._points = [p for p in points if _finite(p.get("x")) and _finite(p.get("y"))]
        self._tuned_only = set(tuned_only_clusters or ())
        self._selected = None
        self.update()

    def _frame(self) -> tuple[QRectF, float, float, float, float]:
        area = QRectF(self.rect()).adjusted(16, 16, -16, -34)
        xs = [p["x"] for p in self._points] or [0.0]
        ys = [p["y"] for p in self._points] or [0.0]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        return area, x0, (x1 - x0) or 1.0, y0, (y1 - y0) or 1.0

    def _pos(self, point: dict, frame) -> QPointF:  # noqa: ANN001
        area, x0, dx, y0, dy = frame
        return QPointF(area.left() + (point["x"] - x0) / dx * area.width(), area.bottom() - (point["y"] - y0) / dy * area.height())

    def paintEvent(self, event) -> None:  # noqa: N802, ANN001
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        painter.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        if not self._points:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, "No cluster map for this run.")
            return
        frame = self._frame()
        for i, point in enumerate(self._points):
            pos = self._pos(point, frame)
            colour = ROLE_COLOURS.get(point.get("role"), QColor("#888"))
            if point.get("cluster") in self._tuned_only:
                painter.setPen(QPen(STATUS_COLOURS["concerning"], 2))
                radius = 6.0
            else:
                painter.setPen(Qt.PenStyle.NoPen)
                radius = 4.0
            painter.setBrush(colour)
            painter.drawEllipse(pos, radius, radius)
            if i == self._selected:
                painter.setPen(QPen(pal.color(QPalette.ColorRole.Text), 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawEllipse(pos, radius + 4, radius + 4)
        # Legend
        fm = QFontMetrics(self.font())
        y = self.height() - 22
        x = 16.0
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        for label, colour in (("base model", ROLE_COLOURS["base"]), ("tuned model", ROLE_COLOURS["tuned"])):
            painter.setBrush(colour)
            painter.drawEllipse(QPointF(x + 5, y + 8), 5, 5)
            painter.drawText(QPointF(x + 14, y + 8 + fm.ascent() / 2 - 1), label)
            x += 24 + fm.horizontalAdvance(label)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(STATUS_COLOURS["concerning"], 2))
        painter.drawEllipse(QPointF(x + 5, y + 8), 6, 6)
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        label = "only the tuned model says this"
        if x + 16 + fm.horizontalAdvance(label) > self.width() - 4:  # a narrow map: keep the legend whole
            label = "tuned-only group"
        painter.drawText(QPointF(x + 16, y + 8 + fm.ascent() / 2 - 1), label)

    def point_at(self, pos: QPointF) -> int | None:
        if not self._points:
            return None
        frame = self._frame()
        best, best_d = None, 12.0**2
        for i, point in enumerate(self._points):
            p = self._pos(point, frame)
            d = (p.x() - pos.x()) ** 2 + (p.y() - pos.y()) ** 2
            if d < best_d:
                best, best_d = i, d
        return best

    def select(self, index: int) -> None:
        if 0 <= index < len(self._points):
            self._selected = index
            self.update()
            self.point_clicked.emit(self._points[index])

    def mousePressEvent(self, event) -> None:  # noqa: N802, ANN001
        index = self.point_at(event.position())
        if index is not None:
            self.select(index)

    def keyPressEvent(self, event) -> None:  # noqa: N802, ANN001
        # Keyboard users step through the points with the arrow keys.
        if self._points and event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Up):
            step = 1 if event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Down) else -1
            current = -1 if self._selected is None else self._selected
            self.select((current + step) % len(self._points))
            return
        super().keyPressEvent(event)


def _finite(value) -> bool:  # noqa: ANN001
    return isinstance(value, (int, float)) and math.isfinite(value)
