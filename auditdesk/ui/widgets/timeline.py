"""A monitor's timeline drawn with QPainter: one row per category, one column per monitored run.

Each cell is the category's status against the base in that run (traffic-light
colour, with the concern score as a bar height), and a dot marks drift since the
run before. It only draws the plain timeline it is given; it never reads the database.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from auditdesk.ui.palette import STATUS_COLOURS

MAX_RUNS = 16


class MonitorTimeline(QWidget):
    """Per category and run: status colour, concern score as the bar's height, a dot where it drifted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._timeline: dict = {"categories": [], "runs": []}
        self._scores: dict[str, list] = {}
        self.setAccessibleName("Monitor timeline")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_timeline(self, timeline: dict, scores: dict[str, list] | None = None) -> None:
        """`timeline`: core.monitoring.monitors.timeline(); `scores`: category -> concern score per run."""
        self._timeline = timeline or {"categories": [], "runs": []}
        self._scores = scores or {}
        rows = max(1, len(self._timeline["categories"]))
        self.setFixedHeight(self._row_height() * (rows + 2) + 12)
        runs = self._timeline["runs"][-MAX_RUNS:]
        self.setAccessibleDescription("; ".join(
            f"{category}: " + ", ".join(f"run {r['run_id']} {r['audit'].get(category, 'not tested')}"
                                        + (f", drift {r['drift'][category]}" if r["drift"].get(category) else "")
                                        for r in runs)
            for category in self._timeline["categories"]))
        self.update()

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + 10

    def paintEvent(self, event) -> None:  # noqa: N802, ANN001
        painter = QPainter(self)
        text_colour = self.palette().color(QPalette.ColorRole.WindowText)
        painter.setPen(text_colour)
        categories = self._timeline["categories"]
        runs = self._timeline["runs"][-MAX_RUNS:]
        offset = len(self._timeline["runs"]) - len(runs)
        if not runs:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No monitored runs yet.")
            return
        fm = QFontMetrics(self.font())
        rh = self._row_height()
        label_w = max(fm.horizontalAdvance(c) for c in categories) + 16 if categories else 80
        cell_w = max(44.0, (self.width() - label_w - 8) / len(runs))
        for j, run in enumerate(runs):
            painter.drawText(QRectF(label_w + j * cell_w, 2, cell_w, rh), Qt.AlignmentFlag.AlignCenter,
                             f"run {run['run_id']}")
        peak = max([v for values in self._scores.values() for v in values if isinstance(v, (int, float))] + [0.0])
        for i, category in enumerate(categories):
            y = rh * (i + 1) + 4
            painter.setPen(text_colour)
            painter.drawText(QRectF(4, y, label_w - 8, rh), Qt.AlignmentFlag.AlignVCenter, category)
            for j, run in enumerate(runs):
                status = run["audit"].get(category)
                x = label_w + j * cell_w
                if status is None:
                    painter.drawText(QRectF(x, y, cell_w, rh), Qt.AlignmentFlag.AlignCenter, "–")
                    continue
                values = self._scores.get(category) or []
                score = values[offset + j] if offset + j < len(values) else None
                share = (score / peak) if peak and isinstance(score, (int, float)) else 0.0
                height = 6 + (rh - 12) * share
                painter.fillRect(QRectF(x + 6, y + rh - 4 - height, cell_w - 12, height), STATUS_COLOURS[status])
                if run["drift"].get(category) in ("changed", "concerning"):
                    painter.setBrush(STATUS_COLOURS[run["drift"][category]])
                    painter.setPen(text_colour)
                    painter.drawEllipse(QRectF(x + cell_w - 12, y + 2, 8, 8))
                    painter.setBrush(Qt.BrushStyle.NoBrush)
        # Legend, so colour is never the only carrier of meaning.
        y = rh * (len(categories) + 1) + 8
        painter.setPen(text_colour)
        x = 4.0
        for key, words in (("concerning", "concerning"), ("changed", "changed"), ("unchanged", "unchanged")):
            painter.fillRect(QRectF(x, y + 4, 12, 12), STATUS_COLOURS[key])
            painter.drawText(QRectF(x + 16, y, 200, rh), Qt.AlignmentFlag.AlignVCenter, words)
            x += 36 + fm.horizontalAdvance(words)
        painter.drawEllipse(QRectF(x, y + 6, 8, 8))
        painter.drawText(QRectF(x + 14, y, 400, rh), Qt.AlignmentFlag.AlignVCenter,
                         "drifted since the run before; bar height: concern score")
