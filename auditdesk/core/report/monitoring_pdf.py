"""The monitoring report PDF: a monitor's timeline, what changed between its last two runs, each run's fingerprint.

It reads stored findings, comparisons and run records only (never analyses or
generates). Text that came from packs, models or servers goes through
`sanitise.to_markup`; the file is written beside the target and renamed when complete.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from auditdesk.core.report import charts, fonts
from auditdesk.core.report.atomic import atomic_path
from auditdesk.core.report.sanitise import label, to_markup
from auditdesk.core.store.db import Store

SECTION_HEADINGS = ["Timeline: concern score per category and run", "What changed between the last two runs",
                    "Each run's fingerprint"]
_MARK = {"concerning": "concerning", "changed": "changed", "unchanged": "unchanged"}


def _timeline_chart(scores: dict[str, list[float | None]], run_ids: list[int], width: float):
    """One line per category: concern score against the monitored runs."""
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    palette = ["#1F3A5F", "#C2571A", "#2E7D32", "#B3261E", "#6B4FA0", "#B26B00", "#0F7C8C", "#8DA2BB"]
    height = 170
    drawing = Drawing(width, height + 14 * ((len(scores) + 2) // 3))
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 40, 14 * ((len(scores) + 2) // 3) + 24, width - 60, height - 40
    data = []
    for values in scores.values():
        points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
        data.append(points or [(1, 0.0)])
    plot.data = data
    top = max([v for values in scores.values() for v in values if v is not None] + [0.1])
    plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = 0, charts._nice_max(top)
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = 0.5, len(run_ids) + 0.5
    plot.xValueAxis.valueSteps = list(range(1, len(run_ids) + 1))
    plot.xValueAxis.labelTextFormat = lambda i: f"run {run_ids[int(i) - 1]}" if 1 <= int(i) <= len(run_ids) else ""
    plot.xValueAxis.labels.fontName = plot.yValueAxis.labels.fontName = fonts.BODY
    plot.xValueAxis.labels.fontSize = plot.yValueAxis.labels.fontSize = 7
    for i in range(len(data)):
        plot.lines[i].strokeColor = colors.HexColor(palette[i % len(palette)])
        plot.lines[i].strokeWidth = 1.4
    drawing.add(plot)
    legend_rows = (len(scores) + 2) // 3
    for i, name in enumerate(scores):  # read left to right, top to bottom
        x, y = 40 + (i % 3) * (width - 60) / 3, 4 + 14 * (legend_rows - 1 - i // 3)
        drawing.add(String(x, y, "— " + label(name, 34), fontName=fonts.BODY, fontSize=7,
                           fillColor=colors.HexColor(palette[i % len(palette)])))
    return drawing


def build_monitoring_report(store: Store, name: str, path: str | Path) -> Path:
    """Write the monitoring report of monitor `name` to `path` (PDF) and return the path."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from auditdesk.core.monitoring.fingerprint import run_fingerprints
    from auditdesk.core.monitoring.monitors import timeline

    font_set = fonts.register_fonts()
    data = timeline(store, name)
    outcomes = data["runs"]
    base = dict(fontName=fonts.BODY, fontSize=9.5, leading=13, textColor=colors.HexColor(charts.INK))
    styles = {"body": ParagraphStyle("body", **base),
              "cell": ParagraphStyle("cell", **{**base, "fontSize": 7.8, "leading": 10}),
              "mono": ParagraphStyle("mono", **{**base, "fontName": fonts.MONO, "fontSize": 7, "leading": 9}),
              "h1": ParagraphStyle("h1", **{**base, "fontName": fonts.BOLD, "fontSize": 16, "leading": 20}),
              "h2": ParagraphStyle("h2", **{**base, "fontName": fonts.BOLD, "fontSize": 12, "leading": 15,
                                            "spaceBefore": 10, "spaceAfter": 4})}

    def para(text, style="body"):  # noqa: ANN001, ANN202
        return Paragraph(to_markup(text, font_set), styles[style])

    def table(rows, widths):  # noqa: ANN001, ANN202
        result = Table([[para(c, "cell") for c in row] for row in rows], colWidths=widths, repeatRows=1)
        result.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor(charts.GRID)),
                                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#F3F4F6")),
                                    ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return result

    width = A4[0] - 36 * mm
    config = data["config"]
    tuned = config.get("lora_adapter") or config.get("tuned_server") or config.get("tuned_model") or ""
    story = [para(f"Monitoring report: {name}", "h1"), Spacer(1, 4),
             para(f"Tuned model {Path(str(tuned)).name} against base model {Path(str(config.get('base_model'))).name}; "
                  f"packs {', '.join(map(str, config.get('packs') or []))}; "
                  f"{len(outcomes)} monitored runs; generated "
                  f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.")]

    story.append(para(SECTION_HEADINGS[0], "h2"))
    run_ids = [o["run_id"] for o in outcomes]
    if not outcomes:
        story.append(para(f"No runs yet: `auditdesk monitor run {name}` makes the first."))
    else:
        scores = data["concern_scores"]
        story.append(_timeline_chart(scores, run_ids, width))
        shown = outcomes[-8:]
        header = ["category"] + [f"run {o['run_id']}" for o in shown]
        rows = [header]
        for category in data["categories"]:
            cells = []
            for o in shown:
                score = scores.get(category, [None] * len(outcomes))[outcomes.index(o)]
                status = _MARK.get(o["audit"].get(category), "-")
                cells.append(f"{status}" + (f" ({score:.2f})" if isinstance(score, (int, float)) else ""))
            rows.append([category] + cells)
        story.append(Spacer(1, 6))
        story.append(table(rows, [width * 0.28] + [width * 0.72 / len(shown)] * len(shown)))
        story.append(para("Status against the base model, with the concern score in brackets. "
                          "Concern scores are the largest significant effect among the tests that decide "
                          "concern (see findings-format.md)."))

    story.append(para(SECTION_HEADINGS[1], "h2"))
    last = outcomes[-1] if outcomes else None
    if not last or last.get("compared_with") is None:
        story.append(para("There is no comparison yet: the monitor needs two runs (or a reference run)."))
    else:
        for role in last.get("swapped") or []:
            story.append(para(f"The {role} model behind the server is not the one audited in run "
                              f"{last['compared_with']}: its answers to the fixed fingerprint probes changed."))
        comparison = store.query("SELECT findings_json FROM comparisons WHERE id = ?", (last.get("comparison_id"),))
        rows = [["category", "drift", "what the comparison found"]]
        if comparison:
            for row in json.loads(comparison[0]["findings_json"]).get("categories", []):
                rows.append([row["category"], row["status"], row.get("summary", "")])
        else:
            rows += [[c, s, ""] for c, s in sorted(last["drift"].items())]
        story.append(para(f"Tuned model of run {last['compared_with']} against the tuned model of run "
                          f"{last['run_id']}, with the audit's tests and false discovery rate control. New concerns: "
                          + (", ".join(last["new_concerns"]) or "none") + "."))
        story.append(table(rows, [width * 0.25, width * 0.13, width * 0.62]))

    story.append(para(SECTION_HEADINGS[2], "h2"))
    rows = [["run", "date", "models (SHA-256 or server identity)", "settings", "server fingerprint"]]
    for o in outcomes:
        run = store.query("SELECT * FROM runs WHERE id = ?", (o["run_id"],))
        if not run:
            rows.append([str(o["run_id"]), o.get("created", "")[:16], "run deleted", "", ""])
            continue
        run = run[0]
        models = "\n".join(f"{role}: {(run[col] or '')[:16]}" for role, col in (
            ("base", "base_model_sha256"), ("tuned", "tuned_model_sha256"), ("adapter", "adapter_sha256")) if run[col])
        prints = "\n".join(f"{role}: {fp['digest'][:16]}" for role, fp in run_fingerprints(store, o["run_id"]).items())
        rows.append([str(o["run_id"]), (run["created"] or "")[:16], models, (run["settings_fingerprint"] or "")[:16],
                     prints or "none (no model on a server)"])
    story.append(table(rows, [width * 0.07, width * 0.16, width * 0.35, width * 0.18, width * 0.24]))

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                                topMargin=16 * mm, bottomMargin=16 * mm, title=f"Monitoring report: {label(name)}",
                                author="AuditDesk")
        doc.build(story)
    return target
