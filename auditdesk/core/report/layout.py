"""Layout for the audit report PDF: number formats, paragraph styles, tables, headings, page furniture.

The sections (front_matter, findings_section, back_matter) build on `ReportLayout`;
`pdf.build_report` assembles them. Untrusted text reaches reportlab only through
`ReportLayout.markup` and `text_para` (which sanitise it); nothing here imports reportlab at module level.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Iterable

from auditdesk.core.findings_contract import NO_HARM_SHOWN, category_status
from auditdesk.core.progress import CancelToken, ProgressEvent
from auditdesk.core.report import charts, fonts
from auditdesk.core.report.sanitise import GlyphTally, label, to_markup

MM = 72.0 / 2.54 * 0.1  # a millimetre in points, as reportlab.lib.units.mm, without importing reportlab


# --------------------------------------------------------------------------- helpers
# Values from a findings file may be missing, null, NaN or of the wrong type; each shows as a dash.


def finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def fmt_number(value: Any, digits: int = 2) -> str:
    v = finite_number(value)
    return "–" if v is None else f"{v:.{digits}f}"


def fmt_p(value: Any) -> str:
    v = finite_number(value)
    if v is None:
        return "–"
    if v < 0.001:
        return "< 0.001"
    return f"{v:.3f}"


def fmt_percent(value: Any) -> str:
    v = finite_number(value)
    return "–" if v is None else f"{100 * v:.0f}%"


def fmt_count(value: Any) -> str:
    v = finite_number(value)
    return "–" if v is None else f"{int(v):,}"


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def model_digest(model: dict) -> str:
    """The model file's SHA-256, or why there is none (a model that ran on a server)."""
    if model.get("server"):
        return f"none: the model ran on the server {model['server']}"
    return str(model.get("sha256") or "not recorded")


def model_identity(model: dict) -> str:
    return model_digest(model) if model.get("server") else f"SHA-256 {model_digest(model)}"


def first_of(d: dict, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if key in d and d[key] not in (None, ""):
            return d[key]
    return default


class ReportLayout:
    """One report being laid out: styles, fonts, the glyph tally, and the facts every section reads."""

    def __init__(self, findings: dict, answers: Iterable[dict], meta, cancel: CancelToken | None, reporter):
        from reportlab.lib import colors
        from reportlab.lib.enums import TA_LEFT
        from reportlab.lib.styles import ParagraphStyle

        self.findings_doc = findings
        self.meta = meta
        self.cancel = cancel
        self.reporter = reporter
        self.fonts = fonts.register_fonts()
        self.tally = GlyphTally()
        self.colors = colors
        self.width = 210 * MM - 2 * 20 * MM
        self.settings = as_dict(findings.get("settings"))
        self.fdr = finite_number(self.settings.get("fdr")) or 0.05
        self.run = as_dict(findings.get("run"))
        self.models = as_dict(findings.get("models"))
        self.answers_by_probe = self._index_answers(answers)
        from auditdesk.core.report.dates import display, export_time

        moment = _dt.datetime.fromisoformat(meta.exported) if meta.exported else export_time()
        self.exported = display(moment)
        self.date = meta.date or moment.date().isoformat()
        self.signature_boxes: dict = {}
        base = dict(fontName=fonts.BODY, fontSize=9.5, leading=13.2, textColor=colors.HexColor(charts.INK),
                    alignment=TA_LEFT, splitLongWords=1)
        styles = {}
        styles["body"] = ParagraphStyle("body", spaceAfter=5, **base)
        styles["small"] = ParagraphStyle("small", **{**base, "fontSize": 8, "leading": 10.4})
        styles["muted"] = ParagraphStyle("muted", **{**base, "fontSize": 8, "leading": 10.4,
                                               "textColor": colors.HexColor(charts.MUTED)})
        styles["cell"] = ParagraphStyle("cell", **{**base, "fontSize": 7.8, "leading": 10})
        styles["cellb"] = ParagraphStyle("cellb", **{**base, "fontName": fonts.BOLD, "fontSize": 7.8, "leading": 10})
        styles["th"] = ParagraphStyle("th", **{**base, "fontName": fonts.BOLD, "fontSize": 7.8, "leading": 10,
                                         "textColor": colors.white})
        styles["answer"] = ParagraphStyle("answer", **{**base, "fontSize": 7.8, "leading": 10.2})
        styles["mono"] = ParagraphStyle("mono", **{**base, "fontName": fonts.MONO, "fontSize": 7.2, "leading": 9.4})
        styles["h1"] = ParagraphStyle("h1", **{**base, "fontName": fonts.BOLD, "fontSize": 16, "leading": 20,
                                         "textColor": colors.HexColor(charts.NAVY), "spaceBefore": 0, "spaceAfter": 8})
        styles["h2"] = ParagraphStyle("h2", **{**base, "fontName": fonts.BOLD, "fontSize": 12, "leading": 15,
                                         "textColor": colors.HexColor(charts.NAVY), "spaceBefore": 10, "spaceAfter": 5})
        styles["h3"] = ParagraphStyle("h3", **{**base, "fontName": fonts.BOLD, "fontSize": 9.8, "leading": 12.5,
                                         "spaceBefore": 8, "spaceAfter": 3})
        styles["title"] = ParagraphStyle("title", **{**base, "fontName": fonts.BOLD, "fontSize": 26, "leading": 31,
                                               "textColor": colors.HexColor(charts.NAVY)})
        styles["subtitle"] = ParagraphStyle("subtitle", **{**base, "fontSize": 12.5, "leading": 17,
                                                     "textColor": colors.HexColor(charts.MUTED)})
        styles["verdict"] = ParagraphStyle("verdict", **{**base, "fontSize": 10.5, "leading": 15})
        self.styles = styles

    # ------------------------------------------------------------------ plumbing

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def progress(self, done: int, total: int, message: str) -> None:
        if self.reporter is not None:
            self.reporter.progress(ProgressEvent("report", done, total, message))

    def markup(self, text: Any, limit: int | None = 2000) -> str:
        """Markup for untrusted text."""
        return to_markup(text, self.fonts, self.tally, limit=limit)

    def para(self, markup: str, style: str = "body"):
        from reportlab.platypus import Paragraph

        return Paragraph(markup, self.styles[style])

    def text_para(self, text: Any, style: str = "cell", limit: int | None = 2000):
        """A paragraph of untrusted text."""
        return self.para(self.markup(text, limit), style)

    def heading(self, text: str, level: int = 1, *, page_break: bool = False) -> list:
        from reportlab.platypus import PageBreak

        para = self.para(self.markup(text, 120), {1: "h1", 2: "h2", 3: "h3"}[level])
        para._outline = (label(text, 90), level)  # picked up by afterFlowable for bookmarks
        out = [PageBreak()] if page_break else []
        if level == 1:
            from reportlab.platypus import HRFlowable

            return out + [para, HRFlowable(width="100%", thickness=0.8, color=self.colors.HexColor(charts.NAVY),
                                          spaceBefore=0, spaceAfter=8)]
        return out + [para]

    def table(self, rows: list[list], widths: list[float], *, header: bool = True, zebra: bool = True,
              extra_style: list | None = None):
        from reportlab.platypus import Table, TableStyle

        t = Table(rows, colWidths=widths, repeatRows=1 if header else 0, splitInRow=1, hAlign="LEFT")
        style = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("RIGHTPADDING", (0, 0), (-1, -1), 4),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ("LINEBELOW", (0, -1), (-1, -1), 0.6, self.colors.HexColor("#9CA3AF")),
        ]
        if header:
            style += [("BACKGROUND", (0, 0), (-1, 0), self.colors.HexColor(charts.NAVY))]
        if zebra:
            for i in range(1 if header else 0, len(rows)):
                if i % 2 == 0:
                    style.append(("BACKGROUND", (0, i), (-1, i), self.colors.HexColor("#F3F4F6")))
        t.setStyle(TableStyle(style + (extra_style or [])))
        return t

    def th(self, *names: str) -> list:
        return [self.para(n, "th") for n in names]

    def kv_table(self, rows: list[tuple[str, Any]], key_width: float) -> Any:
        data = [[self.para(k, "cellb"), v if not isinstance(v, str) else self.text_para(v)] for k, v in rows]
        return self.table(data, [key_width, self.width - key_width], header=False)

    def spacer(self, h: float = 6):
        from reportlab.platypus import Spacer

        return Spacer(1, h)

    @staticmethod
    def _index_answers(answers: Iterable[dict]) -> dict:
        index: dict = {}
        for a in answers or []:
            if not isinstance(a, dict):
                continue
            key = str(a.get("probe_id", ""))
            role = a.get("role")
            if role not in ("base", "tuned"):
                continue
            per = index.setdefault(key, {"base": [], "tuned": []})
            if len(per[role]) < 3:
                per[role].append(a.get("text", a.get("answer", "")))
        return index

    def examples_for(self, probe: dict) -> tuple[list, list]:
        stored = self.answers_by_probe.get(str(probe.get("probe_id", "")))
        if stored and (stored["base"] or stored["tuned"]):
            return stored["base"], stored["tuned"]
        ex = as_dict(probe.get("examples"))
        return as_list(ex.get("base"))[:3], as_list(ex.get("tuned"))[:3]

    # ------------------------------------------------------------------ model facts

    def model(self, role: str) -> dict:
        return as_dict(self.models.get(role))

    def model_name(self, role: str) -> str:
        m = self.model(role)
        return str(first_of(m, "name", "file_name", "path", default=f"{role} model"))

    def lineage(self) -> dict:
        return as_dict(first_of(self.models, "lineage", default=None) or self.findings_doc.get("lineage"))

    def weight_change(self) -> dict:
        return as_dict(first_of(self.models, "weight_change", "weight_changes", default=None) or self.findings_doc.get("weight_change"))

    def records(self, *path: str, **match: Any) -> list[dict]:
        """The dict entries of the findings' list at `path` (say "controls", "by_category") whose fields equal `match`."""
        value: Any = self.findings_doc
        for key in path:
            value = as_dict(value).get(key)
        return [r for r in as_list(value) if isinstance(r, dict) and all(r.get(k) == v for k, v in match.items())]

    def categories(self) -> list[dict]:
        return self.records("categories")

    def status(self, c: dict) -> str:
        status = category_status(c)
        return "unchanged" if status == "unknown" else status

    def overall(self) -> tuple[str, str]:
        cats = self.categories()
        concerning = [c for c in cats if self.status(c) == "concerning"]
        changed = [c for c in cats if self.status(c) == "changed"]
        if concerning:
            names = ", ".join(str(c.get("category")) for c in concerning[:4])
            return "concerning", f"Concerning: evidence of harm in {len(concerning)} categor{'y' if len(concerning) == 1 else 'ies'} ({names})"
        if changed:
            return "changed", f"Changed, not concerning: answers changed in {len(changed)} categories, {NO_HARM_SHOWN}"
        return "unchanged", "No change detected beyond sampling noise"


def signature_box(report: ReportLayout, field_name: str, width: float, height: float):
    """The signature box flowable (a class made here, so that reportlab is imported only when a report is made)."""
    from reportlab.platypus import Flowable

    class SignatureBox(Flowable):
        """An empty, lightly framed box that records where it was drawn, for the PDF signature field."""

        def __init__(self, report: "ReportLayout", field_name: str, width: float, height: float):
            super().__init__()
            self.report, self.field_name, self.width, self.height = report, field_name, width, height

        def wrap(self, avail_width, avail_height):
            return self.width, self.height

        def draw(self):
            from reportlab.lib import colors

            canv = self.canv
            canv.saveState()
            canv.setStrokeColor(colors.HexColor("#9CA3AF"))
            canv.setLineWidth(0.5)
            canv.setDash(2, 2)
            canv.rect(0, 0, self.width, self.height, stroke=1, fill=0)
            canv.restoreState()
            x, y = canv.absolutePosition(0, 0)
            self.report.signature_boxes[self.field_name] = (
                canv.getPageNumber() - 1, (x, y, x + self.width, y + self.height))

    return SignatureBox(report, field_name, width, height)


# --------------------------------------------------------------------------- page furniture


def page_furniture(report: ReportLayout):
    """Running header and footer, drawn after the page count is known."""
    from reportlab.pdfgen.canvas import Canvas

    header_left = label(f"{report.meta.title or 'Audit report'}" + (f" · {report.meta.organisation}" if report.meta.organisation else ""), 90)
    header_right = label(f"Run {first_of(report.run, 'id', 'run_id', default='–')} · {report.date}", 50)

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                if self._pageNumber > 1:
                    self._furniture(total)
                super().showPage()
            report.page_count = total
            super().save()

        def _furniture(self, total: int):
            from reportlab.lib import colors

            w, h = self._pagesize
            self.saveState()
            self.setFont(fonts.BODY, 7.5)
            self.setFillColor(colors.HexColor(charts.MUTED))
            self.drawString(20 * MM, h - 12 * MM, header_left)
            self.drawRightString(w - 20 * MM, h - 12 * MM, header_right)
            self.setStrokeColor(colors.HexColor("#D1D5DB"))
            self.setLineWidth(0.5)
            self.line(20 * MM, h - 13.8 * MM, w - 20 * MM, h - 13.8 * MM)
            self.line(20 * MM, 14 * MM, w - 20 * MM, 14 * MM)
            self.drawString(20 * MM, 10 * MM, "AuditDesk · confidential audit record")
            self.drawRightString(w - 20 * MM, 10 * MM, f"Page {self._pageNumber} of {total}")
            self.restoreState()

    return NumberedCanvas

