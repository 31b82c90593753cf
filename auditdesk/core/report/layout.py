"""Layout for the audit report PDF: number formats, paragraph styles, tables, headings, page furniture.

The sections (front_matter, findings_section, back_matter) build on `ReportLayout`;
`pdf.build_report` assembles them. Untrusted text reaches reportlab only through
`ReportLayout.M`/`T` (which sanitise it); nothing here imports reportlab at module level.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Iterable

from auditdesk.core.findings_contract import category_status
from auditdesk.core.progress import CancelToken, ProgressEvent
from auditdesk.core.report import charts, fonts
from auditdesk.core.report.sanitise import GlyphTally, label, to_markup


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def _fmt(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}f}"


def _fmt_p(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if v < 0.001:
        return "< 0.001"
    return f"{v:.3f}"


def _pct(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{100 * v:.0f}%"


def _int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{int(v):,}"


def _prompt_format_text(format_id: Any) -> str:
    """The prompt format in words: the plain Q/A format or the model's own chat template."""
    text = str(format_id or "")
    if text.startswith("chat-template"):
        return f"the base model's chat template (hash {text.partition(':')[2] or 'not recorded'}), used for both models."
    if text:
        return "plain completion, 'Question: … / Answer:', the same for both models."
    return "not recorded."


def _per_role(engine: dict) -> list[tuple[str, dict]]:
    """Engine facts per model role ({"base": {...}, "tuned": {...}}) or one flat record."""
    if engine and all(isinstance(v, dict) for v in engine.values()):
        return [(str(role), v) for role, v in engine.items()]
    return [("", engine)] if engine else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _digest(model: dict) -> str:
    """The model file's SHA-256, or why there is none (a model that ran on a server)."""
    if model.get("server"):
        return f"none: the model ran on the server {model['server']}"
    return str(model.get("sha256") or "not recorded")


def _identity(model: dict) -> str:
    return _digest(model) if model.get("server") else f"SHA-256 {_digest(model)}"


def _first(d: dict, *keys: str, default: Any = None) -> Any:
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
        from reportlab.lib.units import mm

        self.f = findings
        self.meta = meta
        self.cancel = cancel
        self.reporter = reporter
        self.fonts = fonts.register_fonts()
        self.tally = GlyphTally()
        self.mm = mm
        self.colors = colors
        self.width = 210 * mm - 2 * 20 * mm
        self.settings = _dict(findings.get("settings"))
        self.fdr = _num(self.settings.get("fdr")) or 0.05
        self.run = _dict(findings.get("run"))
        self.models = _dict(findings.get("models"))
        self.answers_by_probe = self._index_answers(answers)
        from auditdesk.core.report.dates import display, export_time

        moment = _dt.datetime.fromisoformat(meta.exported) if meta.exported else export_time()
        self.exported = display(moment)
        self.date = meta.date or moment.date().isoformat()
        self.signature_boxes: dict = {}
        base = dict(fontName=fonts.BODY, fontSize=9.5, leading=13.2, textColor=colors.HexColor(charts.INK),
                    alignment=TA_LEFT, splitLongWords=1)
        S = {}
        S["body"] = ParagraphStyle("body", spaceAfter=5, **base)
        S["small"] = ParagraphStyle("small", **{**base, "fontSize": 8, "leading": 10.4})
        S["muted"] = ParagraphStyle("muted", **{**base, "fontSize": 8, "leading": 10.4,
                                               "textColor": colors.HexColor(charts.MUTED)})
        S["cell"] = ParagraphStyle("cell", **{**base, "fontSize": 7.8, "leading": 10})
        S["cellb"] = ParagraphStyle("cellb", **{**base, "fontName": fonts.BOLD, "fontSize": 7.8, "leading": 10})
        S["th"] = ParagraphStyle("th", **{**base, "fontName": fonts.BOLD, "fontSize": 7.8, "leading": 10,
                                         "textColor": colors.white})
        S["answer"] = ParagraphStyle("answer", **{**base, "fontSize": 7.8, "leading": 10.2})
        S["mono"] = ParagraphStyle("mono", **{**base, "fontName": fonts.MONO, "fontSize": 7.2, "leading": 9.4})
        S["h1"] = ParagraphStyle("h1", **{**base, "fontName": fonts.BOLD, "fontSize": 16, "leading": 20,
                                         "textColor": colors.HexColor(charts.NAVY), "spaceBefore": 0, "spaceAfter": 8})
        S["h2"] = ParagraphStyle("h2", **{**base, "fontName": fonts.BOLD, "fontSize": 12, "leading": 15,
                                         "textColor": colors.HexColor(charts.NAVY), "spaceBefore": 10, "spaceAfter": 5})
        S["h3"] = ParagraphStyle("h3", **{**base, "fontName": fonts.BOLD, "fontSize": 9.8, "leading": 12.5,
                                         "spaceBefore": 8, "spaceAfter": 3})
        S["title"] = ParagraphStyle("title", **{**base, "fontName": fonts.BOLD, "fontSize": 26, "leading": 31,
                                               "textColor": colors.HexColor(charts.NAVY)})
        S["subtitle"] = ParagraphStyle("subtitle", **{**base, "fontSize": 12.5, "leading": 17,
                                                     "textColor": colors.HexColor(charts.MUTED)})
        S["verdict"] = ParagraphStyle("verdict", **{**base, "fontSize": 10.5, "leading": 15})
        self.S = S

    # ------------------------------------------------------------------ plumbing

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def progress(self, done: int, total: int, message: str) -> None:
        if self.reporter is not None:
            self.reporter.progress(ProgressEvent("report", done, total, message))

    def M(self, text: Any, limit: int | None = 2000) -> str:
        """Markup for untrusted text."""
        return to_markup(text, self.fonts, self.tally, limit=limit)

    def P(self, markup: str, style: str = "body"):
        from reportlab.platypus import Paragraph

        return Paragraph(markup, self.S[style])

    def T(self, text: Any, style: str = "cell", limit: int | None = 2000):
        """A paragraph of untrusted text."""
        return self.P(self.M(text, limit), style)

    def heading(self, text: str, level: int = 1, *, page_break: bool = False) -> list:
        from reportlab.platypus import PageBreak

        para = self.P(self.M(text, 120), {1: "h1", 2: "h2", 3: "h3"}[level])
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
        return [self.P(n, "th") for n in names]

    def kv_table(self, rows: list[tuple[str, Any]], key_width: float) -> Any:
        data = [[self.P(k, "cellb"), v if not isinstance(v, str) else self.T(v)] for k, v in rows]
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
        ex = _dict(probe.get("examples"))
        return _list(ex.get("base"))[:3], _list(ex.get("tuned"))[:3]

    # ------------------------------------------------------------------ model facts

    def model(self, role: str) -> dict:
        return _dict(self.models.get(role))

    def model_name(self, role: str) -> str:
        m = self.model(role)
        return str(_first(m, "name", "file_name", "path", default=f"{role} model"))

    def lineage(self) -> dict:
        return _dict(_first(self.models, "lineage", default=None) or self.f.get("lineage"))

    def weight_change(self) -> dict:
        return _dict(_first(self.models, "weight_change", "weight_changes", default=None) or self.f.get("weight_change"))

    def categories(self) -> list[dict]:
        return [c for c in _list(self.f.get("categories")) if isinstance(c, dict)]

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
            return "changed", f"Changed, not concerning: answers changed in {len(changed)} categories, with no evidence of harm"
        return "unchanged", "No change detected beyond sampling noise"


def _signature_box_class():
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

    return SignatureBox


def signature_box(report: "ReportLayout", field_name: str, width: float, height: float):
    """The signature box flowable (a function so that reportlab is imported only when a report is made)."""
    return _signature_box_class()(report, field_name, width, height)


# --------------------------------------------------------------------------- page furniture


def page_furniture(report: ReportLayout):
    """Running header and footer, drawn after the page count is known."""
    from reportlab.pdfgen.canvas import Canvas

    header_left = label(f"{report.meta.title or 'Audit report'}" + (f" · {report.meta.organisation}" if report.meta.organisation else ""), 90)
    header_right = label(f"Run {_first(report.run, 'id', 'run_id', default='–')} · {report.date}", 50)

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
            from reportlab.lib.units import mm

            w, h = self._pagesize
            self.saveState()
            self.setFont(fonts.BODY, 7.5)
            self.setFillColor(colors.HexColor(charts.MUTED))
            self.drawString(20 * mm, h - 12 * mm, header_left)
            self.drawRightString(w - 20 * mm, h - 12 * mm, header_right)
            self.setStrokeColor(colors.HexColor("#D1D5DB"))
            self.setLineWidth(0.5)
            self.line(20 * mm, h - 13.8 * mm, w - 20 * mm, h - 13.8 * mm)
            self.line(20 * mm, 14 * mm, w - 20 * mm, 14 * mm)
            self.drawString(20 * mm, 10 * mm, "AuditDesk · confidential audit record")
            self.drawRightString(w - 20 * mm, 10 * mm, f"Page {self._pageNumber} of {total}")
            self.restoreState()

    return NumberedCanvas

