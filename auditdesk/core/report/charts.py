"""Vector charts of the report, drawn with reportlab's own graphics.

Each function takes plain numbers and labels and returns a `Drawing` flowable.
Labels come from the findings file and are passed through `sanitise.label`;
charts never draw images or links.
"""

from __future__ import annotations

import math

from auditdesk.core.report import fonts
from auditdesk.core.report.sanitise import label

INK = "#1F2937"
MUTED = "#6B7280"
GRID = "#E5E7EB"
NAVY = "#1F3A5F"
RED = "#B3261E"
AMBER = "#B26B00"
GREEN = "#2E7D32"
BASE_COLOUR = "#8DA2BB"
TUNED_COLOUR = "#C2571A"

STATUS_COLOURS = {"concerning": RED, "changed": AMBER, "unchanged": GREEN, "unknown": MUTED}  # findings_contract.STATUSES


def _c(hex_colour: str):
    from reportlab.lib import colors

    return colors.HexColor(hex_colour)


def _string(x, y, text, size=7, colour=INK, anchor="start", bold=False):
    from reportlab.graphics.shapes import String

    return String(
        x, y, text, fontName=fonts.BOLD if bold else fonts.BODY, fontSize=size, fillColor=_c(colour), textAnchor=anchor
    )


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exp
        if top >= value:
            return top
    return 10 ** (exp + 1)


def category_bars(rows: list[tuple[str, float, str]], width: float, *, axis_label: str = "concern score"):
    """Horizontal bars, one per category: (name, value, status) with traffic-light colours."""
    from reportlab.graphics.shapes import Drawing, Line, Rect

    bar_h, gap, left, top_pad, bottom_pad = 11, 5, 120, 6, 24
    height = top_pad + bottom_pad + max(1, len(rows)) * (bar_h + gap)
    d = Drawing(width, height)
    plot_w = width - left - 40
    vmax = _nice_max(max([v for _, v, _ in rows if math.isfinite(v)] or [1.0]))
    y0 = bottom_pad
    for i in range(5):
        x = left + plot_w * i / 4
        d.add(Line(x, y0 - 2, x, height - top_pad, strokeColor=_c(GRID), strokeWidth=0.5))
        d.add(_string(x, y0 - 11, f"{vmax * i / 4:g}", size=6.5, colour=MUTED, anchor="middle"))
    d.add(_string(left + plot_w / 2, 2, axis_label, size=7, colour=MUTED, anchor="middle"))
    for i, (name, value, status) in enumerate(rows):
        y = height - top_pad - (i + 1) * (bar_h + gap) + gap
        d.add(_string(left - 6, y + 3, label(name, 24), size=7.5, anchor="end"))
        v = value if math.isfinite(value) else 0.0
        w = max(0.8, plot_w * min(v, vmax) / vmax)
        d.add(Rect(left, y, w, bar_h, fillColor=_c(STATUS_COLOURS.get(status, MUTED)), strokeColor=None))
        d.add(_string(left + w + 4, y + 3, f"{value:.2f}" if math.isfinite(value) else "n/a", size=6.5, colour=MUTED))
    d.add(Line(left, y0 - 2, left, height - top_pad, strokeColor=_c(INK), strokeWidth=0.6))
    return d


def layer_change(values: list[tuple[str, float]], width: float, height: float = 90):
    """Small column chart of where the weights changed: relative change per layer."""
    from reportlab.graphics.shapes import Drawing, Line, Rect

    d = Drawing(width, height)
    left, bottom, top = 34, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    vmax = _nice_max(max([v for _, v in values if math.isfinite(v)] or [1.0]))
    for i in range(3):
        y = bottom + plot_h * i / 2
        d.add(Line(left, y, left + plot_w, y, strokeColor=_c(GRID), strokeWidth=0.5))
        d.add(_string(left - 4, y - 2, f"{vmax * i / 2:.2g}", size=6, colour=MUTED, anchor="end"))
    n = max(1, len(values))
    slot = plot_w / n
    for i, (name, v) in enumerate(values):
        v = v if math.isfinite(v) else 0.0
        h = plot_h * min(v, vmax) / vmax
        d.add(Rect(left + i * slot + slot * 0.15, bottom, max(0.5, slot * 0.7), h, fillColor=_c(NAVY), strokeColor=None))
    step = max(1, n // 8)
    for i in range(0, n, step):
        d.add(_string(left + (i + 0.5) * slot, bottom - 9, label(values[i][0], 10), size=5.5, colour=MUTED, anchor="middle"))
    d.add(_string(left + plot_w / 2, 2, "layer (relative weight change ||ΔW|| / ||W||)", size=6.5, colour=MUTED, anchor="middle"))
    return d


def probe_divergence(rows: list[tuple[str, float, bool]], width: float):
    """Bars of divergence for the top probes of a category; flagged probes in the tuned colour."""
    from reportlab.graphics.shapes import Drawing, Line, Rect

    bar_h, gap, left, bottom_pad, top_pad = 9, 4, 150, 22, 4
    height = bottom_pad + top_pad + max(1, len(rows)) * (bar_h + gap)
    d = Drawing(width, height)
    plot_w = width - left - 40
    vmax = _nice_max(max([v for _, v, _ in rows if math.isfinite(v)] or [1.0]))
    for i in range(5):
        x = left + plot_w * i / 4
        d.add(Line(x, bottom_pad - 2, x, height - top_pad, strokeColor=_c(GRID), strokeWidth=0.5))
        d.add(_string(x, bottom_pad - 11, f"{vmax * i / 4:.3g}", size=6, colour=MUTED, anchor="middle"))
    for i, (name, value, flagged) in enumerate(rows):
        y = height - top_pad - (i + 1) * (bar_h + gap) + gap
        d.add(_string(left - 5, y + 2, label(name, 30), size=6.5, anchor="end"))
        v = value if math.isfinite(value) else 0.0
        w = max(0.8, plot_w * min(v, vmax) / vmax)
        d.add(Rect(left, y, w, bar_h, fillColor=_c(TUNED_COLOUR if flagged else BASE_COLOUR), strokeColor=None))
    d.add(Line(left, bottom_pad - 2, left, height - top_pad, strokeColor=_c(INK), strokeWidth=0.6))
    d.add(_string(left + plot_w / 2, 1, "divergence between base and tuned answers (orange: flagged)", size=6.5, colour=MUTED, anchor="middle"))
    return d


def interval_plot(rows: list[tuple[str, float, float | None, float | None]], width: float, *, axis_label: str):
    """Forest plot: a point and its confidence interval per row, with a zero line."""
    from reportlab.graphics.shapes import Circle, Drawing, Line

    row_h, left, bottom_pad, top_pad = 13, 190, 24, 4
    height = bottom_pad + top_pad + max(1, len(rows)) * row_h
    d = Drawing(width, height)
    plot_w = width - left - 20
    values = [abs(v) for _, est, lo, hi in rows for v in (est, lo, hi) if v is not None and math.isfinite(v)]
    span = _nice_max(max(values or [1.0]))

    def xpos(v):
        return left + plot_w * (v + span) / (2 * span)

    for i in range(5):
        v = -span + 2 * span * i / 4
        d.add(Line(xpos(v), bottom_pad - 2, xpos(v), height - top_pad, strokeColor=_c(GRID), strokeWidth=0.5))
        d.add(_string(xpos(v), bottom_pad - 11, f"{v:+.2g}" if v else "0", size=6, colour=MUTED, anchor="middle"))
    d.add(Line(xpos(0), bottom_pad - 2, xpos(0), height - top_pad, strokeColor=_c(INK), strokeWidth=0.7))
    for i, (name, est, lo, hi) in enumerate(rows):
        y = height - top_pad - (i + 0.5) * row_h
        d.add(_string(left - 6, y - 2.5, label(name, 44), size=6.5, anchor="end"))
        excludes_zero = lo is not None and hi is not None and (lo > 0 or hi < 0)
        colour = TUNED_COLOUR if excludes_zero else BASE_COLOUR
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            d.add(Line(xpos(lo), y, xpos(hi), y, strokeColor=_c(colour), strokeWidth=1.4))
            for v in (lo, hi):
                d.add(Line(xpos(v), y - 2.5, xpos(v), y + 2.5, strokeColor=_c(colour), strokeWidth=0.8))
        if est is not None and math.isfinite(est):
            d.add(Circle(xpos(est), y, 2.4, fillColor=_c(colour), strokeColor=None))
    d.add(_string(left + plot_w / 2, 1, axis_label, size=6.5, colour=MUTED, anchor="middle"))
    return d


def cluster_map(points: list[tuple[float, float, str, bool]], width: float, height: float,
                labels: list[tuple[float, float, str]] = ()):
    """Scatter of answers in 2-D: (x, y, role, in a new-behaviour cluster); base grey, tuned orange."""
    from reportlab.graphics.shapes import Circle, Drawing, Rect

    d = Drawing(width, height)
    pad, legend_h = 8, 16
    d.add(Rect(0, legend_h, width, height - legend_h, fillColor=None, strokeColor=_c(GRID), strokeWidth=0.6))
    finite = [(x, y) for x, y, _, _ in points if math.isfinite(x) and math.isfinite(y)]
    if finite:
        xs, ys = [p[0] for p in finite], [p[1] for p in finite]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        sx = (width - 2 * pad) / ((x1 - x0) or 1.0)
        sy = (height - legend_h - 2 * pad) / ((y1 - y0) or 1.0)

        def pos(x, y):
            return pad + (x - x0) * sx, legend_h + pad + (y - y0) * sy

        # Base first so the tuned model's answers are drawn on top.
        for x, y, role, new in sorted(points, key=lambda p: p[2] == "tuned"):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            px, py = pos(x, y)
            if role == "tuned":
                d.add(Circle(px, py, 2.1 if new else 1.6, fillColor=_c(TUNED_COLOUR if new else "#E8A77F"), strokeColor=None))
            else:
                d.add(Circle(px, py, 1.6, fillColor=_c(BASE_COLOUR), strokeColor=None))
        for x, y, text in labels:
            if math.isfinite(x) and math.isfinite(y):
                px, py = pos(x, y)
                d.add(_string(px, py + 4, label(text, 30), size=6.5, colour=INK, anchor="middle", bold=True))
    items = [(BASE_COLOUR, "base answer"), ("#E8A77F", "tuned answer"), (TUNED_COLOUR, "tuned answer in a new-behaviour cluster")]
    x = 4
    for colour, text in items:
        d.add(Circle(x + 3, 6, 2.4, fillColor=_c(colour), strokeColor=None))
        d.add(_string(x + 9, 3.5, text, size=6.5, colour=MUTED))
        x += 14 + len(text) * 3.4
    return d


def traffic_light(status: str, size: float = 8):
    """A small filled dot in the status colour, for tables."""
    from reportlab.graphics.shapes import Circle, Drawing

    d = Drawing(size, size)
    d.add(Circle(size / 2, size / 2, size / 2 - 0.5, fillColor=_c(STATUS_COLOURS.get(status, MUTED)), strokeColor=None))
    return d
