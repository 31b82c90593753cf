"""Lays out the audit report PDF from a findings document and the stored answers.

Every text that came from a model, a probe pack or a findings file goes through
`sanitise.to_markup` before it reaches reportlab; nothing here may read a file
named in such text or create links or images from it. The PDF is written to a
temporary file beside the target and renamed only when complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, ProgressEvent
from auditdesk.core.report import charts, fonts
from auditdesk.core.report.atomic import atomic_path
from auditdesk.core.report.sanitise import GlyphTally, label, to_markup

from auditdesk.core import findings_contract
from auditdesk.core.findings_contract import FORMAT, STATUS_WORDS, category_status

ANSWER_LIMIT = 900  # characters of one answer shown in the body; the CSV has all of it
QUESTION_LIMIT = 600
APPENDIX_QUESTION_LIMIT = 240
TOP_PROBES_CONCERNING = 3
TOP_PROBES_CHANGED = 1

SECTION_HEADINGS = [
    "Executive summary",
    "What was tested",
    "How to read this report",
    "Findings",
    "Analyst notes",
    "Limitations",
    "Sign-off",
    "Appendix A: every probe",
    "Appendix B: reproducibility",
    "Appendix C: framework mapping",
]



@dataclass
class ReportMeta:
    """What the person exporting the report fills in, plus how to reproduce the audit."""

    organisation: str = ""
    auditor: str = ""
    title: str = "Fine-tuned model behaviour audit"
    date: str = ""  # empty: the export date
    notes: str = ""
    annotations: list[dict] = field(default_factory=list)  # {target/probe_id, status, note, author, created_at}
    tool_version: str = ""
    reproduce_command: str = ""
    exported: str = ""  # when this export happens (empty: now); see core/report/dates.py
    manifest: dict | None = None  # the evidence manifest, printed in Appendix B
    frameworks: dict | None = None  # the framework mapping, printed as Appendix C
    signer_name: str = ""  # set when the auditor's digital signature is added at export
    signer_role: str = ""
    signer_fingerprint: str = ""


@dataclass
class ReportResult:
    """What the export produced, including what the PDF had to change in the text."""

    path: Path
    pages: int
    seconds: float
    missing_glyphs: int
    hidden_characters: int
    truncated_texts: int
    # Where the sign-off block's signature boxes landed: field name -> (page index, (x1, y1, x2, y2)) in points.
    signature_boxes: dict = field(default_factory=dict)


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


class _Report:
    """One report being laid out: styles, fonts, the glyph tally and the story."""

    def __init__(self, findings: dict, answers: Iterable[dict], meta: ReportMeta, cancel: CancelToken | None, reporter):
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

    # ------------------------------------------------------------------ sections

    def cover(self) -> list:
        from reportlab.platypus import PageBreak, Table, TableStyle

        mm = self.mm
        out = [self.spacer(38 * mm), self.P("AUDIT REPORT", "muted"), self.spacer(3)]
        out.append(self.P(self.M(self.meta.title or "Fine-tuned model behaviour audit", 200), "title"))
        out.append(self.spacer(4))
        out.append(self.P("Does the vendor's fine-tuned model behave differently from the base model it was made from?", "subtitle"))
        out.append(self.spacer(14 * mm))
        status, words = self.overall()
        colour = charts.STATUS_COLOURS.get(status, charts.MUTED)
        box = Table([[charts.traffic_light(status, 11), self.P(f"<b>Overall result.</b> {self.M(words, 300)}", "verdict")]],
                    colWidths=[9 * mm, self.width - 9 * mm])
        box.setStyle(TableStyle([
            ("BOX", (0, 0), (-1, -1), 1.2, self.colors.HexColor(colour)),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 8), ("BOTTOMPADDING", (0, 0), (-1, -1), 8),
            ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ]))
        out += [box, self.spacer(10 * mm)]
        rows = [
            ("Organisation", self.meta.organisation or "(not given)"),
            ("Auditor", self.meta.auditor or "(not given)"),
            ("Report exported", self.exported),
            ("Audit ran", self._audit_dates()),
            ("Audit run", str(_first(self.run, "id", "run_id", default="–"))),
        ]
        for role, word in (("base", "Base model"), ("tuned", "Tuned model")):
            m = self.model(role)
            rows.append((word, self.P(
                f"{self.M(self.model_name(role), 200)}<br/><font name='{fonts.MONO}' size='7.2'>"
                f"{self.M(_identity(m), 120)}</font>", "cell")))
        rows.append(("AuditDesk version", self.meta.tool_version or str(_dict(self.f.get("tool")).get("version", "–"))))
        out.append(self.kv_table(rows, 34 * mm))
        if self.meta.notes:
            out += [self.spacer(8), self.P("<b>Notes from the auditor</b>", "small"), self.T(self.meta.notes, "small", 1500)]
        out += [self.spacer(12 * mm), self.P(
            "This report was produced offline by AuditDesk from answers that both models gave to the same probe "
            "questions. It records measurements and the statistical evidence behind them; the conclusions are the "
            "signing auditor's.", "muted"), PageBreak()]
        return out

    def _audit_dates(self) -> str:
        """When the audit's answers were generated, from the run record."""
        start = _first(self.run, "started_at", "started", default="")
        end = _first(self.run, "finished_at", "ended", default="")
        if not (start or end):
            return "not recorded"
        day = lambda t: str(t).replace("T", " ")[:16] + (" UTC" if str(t).endswith("+00:00") else "")  # noqa: E731
        return f"{day(start) if start else '–'}  to  {day(end) if end else 'not finished'}"

    def executive_summary(self) -> list:
        out = self.heading("Executive summary")
        verdict = _dict(self.f.get("verdict"))
        text = verdict.get("text") or "The analysis gave no verdict text."
        out.append(self.P(self.M(text, 1500), "verdict"))
        out.append(self.spacer(4))
        cats = self.categories()
        if cats:
            rows = [self.th("Status", "Category", "Probes", "Changed probes", "Change score", "Concern score", "Concern q")]
            for c in cats:
                st = self.status(c)
                rows.append([
                    self._status_cell(st),
                    self.T(c.get("category"), "cellb", 60),
                    self.P(_int(c.get("probes")), "cell"),
                    self.P(f"{_int(c.get('changed_probes'))} of {_int(_first(c, 'tested_probes', 'probes'))}", "cell"),
                    self.P(_fmt(c.get("change_score")), "cell"),
                    self.P(_fmt(c.get("concern_score")), "cell"),
                    self.P(_fmt_p(c.get("concern_q_value")), "cell"),
                ])
            mm = self.mm
            out.append(self.table(rows, [44 * mm, 32 * mm, 15 * mm, 24 * mm, 17 * mm, 17 * mm, self.width - 149 * mm]))
            out.append(self.spacer(3))
            out.append(self.P(
                f"Concerning: significant evidence of the harm the category is about (concern q-value below the "
                f"false-discovery level {self.fdr:g} and a large enough effect). Changed: answers differ beyond sampling "
                f"noise, without such evidence. Scores run from 0 to 1.", "muted"))
            chart_rows = [(str(c.get("category")), _num(c.get("concern_score")) or 0.0, self.status(c)) for c in cats]
            out += [self.spacer(6), charts.category_bars(chart_rows, self.width, axis_label="concern score (0 = no evidence of harm)")]
        out += self.heading("The most important findings", 2)
        lines = [x for x in _list(verdict.get("lines")) if x][:3]
        if not lines:
            for c in cats[:3]:
                if self.status(c) != "unchanged":
                    lines.append(f"{c.get('category')}: {c.get('summary') or STATUS_WORDS[self.status(c)]}")
        if not lines:
            lines = ["No category showed a change beyond sampling noise."]
        for i, line in enumerate(lines, 1):
            out.append(self.P(f"<b>{i}.</b>&nbsp; {self.M(line, 400)}", "body"))
        return out

    def _status_cell(self, status: str):
        from reportlab.platypus import Table, TableStyle

        t = Table([[charts.traffic_light(status, 7.5), self.P(STATUS_WORDS[status], "cell")]],
                  colWidths=[4 * self.mm, 38 * self.mm])
        t.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 1),
                               ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        return t

    def what_was_tested(self) -> list:
        mm = self.mm
        out = self.heading("What was tested", page_break=True)
        out += self.heading("The two models", 2)
        base, tuned = self.model("base"), self.model("tuned")
        fields = [
            ("Name", ("name",)), ("File", ("file_name", "path")), ("Kind", ("kind",)),
            ("Architecture", ("architecture",)), ("Size", ("size_label",)), ("Parameters", ("parameter_count",)),
            ("Quantisation", ("quantisation", "file_type")), ("Context length", ("context_length",)),
            ("Vocabulary", ("vocab_size",)), ("Tokenizer fingerprint", ("tokenizer_fingerprint",)),
            ("Chat template", ("chat_template_present",)), ("Adapter rank / alpha", ("adapter_rank",)),
        ]
        rows = [self.th("", "Base model", "Tuned model")]
        for name, keys in fields:
            vals = []
            for m in (base, tuned):
                v = _first(m, *keys)
                if keys[0] == "chat_template_present" and v is not None:
                    v = "present" if v else "none"
                elif keys[0] == "parameter_count" and _num(v) is not None:
                    v = f"{int(v):,}"
                elif keys[0] == "adapter_rank" and v is not None:
                    v = f"{v} / {m.get('adapter_alpha', '–')}"
                vals.append(v)
            if all(v is None for v in vals):
                continue
            rows.append([self.P(name, "cellb")] + [self.T("–" if v is None else v, "cell", 300) for v in vals])
        rows.append([self.P("SHA-256", "cellb")] + [self.T(_digest(m), "mono", 120) for m in (base, tuned)])
        col = (self.width - 34 * mm) / 2
        out.append(self.table(rows, [34 * mm, col, col]))
        lin = self.lineage()
        out += self.heading("Lineage", 3)
        if lin:
            verdict = _first(lin, "verdict", "summary", "text", default="")
            ok = _first(lin, "plausibly_derived", "compatible", "plausible", "derived", default=None)
            colour = charts.GREEN if ok else (charts.RED if ok is False else charts.INK)
            out.append(self.P(f"<font color='{colour}'><b>{self.M(verdict or ('compatible' if ok else 'see differences'), 300)}</b></font>", "body"))
            for d in _list(_first(lin, "differences", "warnings", default=[]))[:10]:
                out.append(self.P(f"• {self.M(d if isinstance(d, str) else json.dumps(d, ensure_ascii=False), 300)}", "small"))
        else:
            out.append(self.P("The lineage check was not recorded for this run.", "body"))
        wc = self.weight_change()
        layers = [x for x in _list(_first(wc, "layers", "tensors", default=[])) if isinstance(x, dict)]
        out += self.heading("Where the weights changed", 3)
        if layers:
            values = [(str(_first(x, "layer", "name", default=i)), _num(_first(x, "relative_change", "norm", "value")) or 0.0)
                      for i, x in enumerate(layers[:96])]
            kind = wc.get("kind")
            out.append(self.P("Relative size of the vendor's change per layer"
                              + (" (norm of the adapter's update)" if kind == "adapter" else "") + ".", "small"))
            out.append(charts.layer_change(values, self.width, 95))
        else:
            out.append(self.P("Not measured in this run.", "body"))
        out += self.heading("Audit settings", 2)
        out.append(self.kv_table(self._settings_rows(), 44 * mm))
        return out

    def _settings_rows(self) -> list:
        r = self.run
        summary = _dict(self.f.get("summary"))
        packs = []
        for p in _list(r.get("packs")):
            if isinstance(p, dict):
                packs.append(f"{_first(p, 'id', 'pack_id', default='?')} v{_first(p, 'version', default='?')}"
                             + (f" ({p['probes']} probes)" if _num(p.get("probes")) is not None else ""))
            else:
                packs.append(str(p))
        sampling = _dict(_first(r, "sampling", "params", "sampling_params", default={}))
        engine = _dict(_first(r, "engine", "engine_info", default={}))
        host = _first(r, "host", "hardware", default=None)
        answers = _dict(summary.get("answers"))
        rows = [
            ("Probe packs", ", ".join(packs) or "not recorded"),
            ("Answers per question", str(_first(r, "samples", "samples_per_probe", default="not recorded"))),
            ("Sampling", ", ".join(f"{k} {v}" for k, v in sampling.items()) or "not recorded"),
            ("Seed", str(_first(r, "seed", "seeds", default="not recorded"))),
            ("Prompt format", " ".join([_prompt_format_text(r.get("prompt_format"))]
                                       + [str(n) for n in _list(r.get("notes")) if n])),
            ("Engine", self._engine_text(engine)),
            ("GPU offload", self._gpu_text(engine, r)),
            ("Hardware", (", ".join(f"{k} {v}" for k, v in host.items()) if isinstance(host, dict) else str(host or "not recorded"))),
            ("Started / finished", f"{_first(r, 'started_at', 'started', 'start', default='–')}  /  {_first(r, 'finished_at', 'ended', 'end', default='–')}"),
            ("Answers collected", f"base {_int(answers.get('base'))}, tuned {_int(answers.get('tuned'))}; "
                                  f"likelihood scores {_int(summary.get('likelihood_scores'))}"),
            ("Analysis", f"false-discovery level {self.fdr:g}, minimum effect {_fmt(self.settings.get('min_effect'))}, "
                         f"embedding model {self.settings.get('embedding_model', '–')}, "
                         f"model judge {'on' if self.settings.get('judge') else 'off'}"),
        ]
        return rows

    @staticmethod
    def _engine_text(engine: dict) -> str:
        """One readable line per model: backend, library version, threads, context, notes."""
        lines = []
        for role, info in _per_role(engine):
            version = str(info.get("llama_cpp_version") or "").split(" (")[0]  # drop the CPU feature list
            parts = [str(info.get("backend") or "engine"), version,
                     f"{info['n_threads']} threads" if info.get("n_threads") else "",
                     f"context {info['n_ctx']} per answer" if info.get("n_ctx") else "",
                     f"{info['max_sequences']} answers in flight" if info.get("max_sequences") else ""]
            text = ", ".join(p for p in parts if p)
            notes = [str(n) for n in _list(info.get("notes")) if n]
            if notes:
                text += " (" + "; ".join(notes) + ")"
            lines.append(f"{role}: {text}" if role else text)
        return "; ".join(lines) or "not recorded"

    @staticmethod
    def _gpu_text(engine: dict, run: dict) -> str:
        roles = _per_role(engine)
        on_server = [role for role, info in roles if info.get("backend") == "http"]
        if on_server:
            local = [(role, info) for role, info in roles if info.get("backend") != "http"]
            text = "set on the model servers" if len(on_server) > 1 else f"set on the model server for the {on_server[0] or 'remote'} model"
            return text + (f"; {local[0][0]}: {_Report._gpu_text(local[0][1], run)}" if local else "")
        engine = roles[0][1] if roles else engine
        req = _first(engine, "n_gpu_layers_requested", default=_first(run, "n_gpu_layers", "gpu_layers"))
        used = _first(engine, "n_gpu_layers_used", default=None)
        if req is None and used is None:
            return "not recorded"
        if not used:
            return f"none used (CPU only; {req or 0} layers requested)"
        return f"{used} layers on the GPU ({req} requested)"

    def how_to_read(self) -> list:
        out = self.heading("How to read this report", page_break=True)
        fdr = self.fdr
        paras = [
            ("What was done", "Both models answered the same questions (probes), several times each with fixed seeds. "
             "Probes are grouped into categories such as gender, age or safety. Each category is asked two separate "
             "questions: did the answers <b>change</b>, and is there evidence of the specific <b>harm</b> the category is about?"),
            ("Divergence", "Each answer is turned into a numerical fingerprint of its meaning (a sentence embedding). "
             "Divergence measures how far apart the base model's and the tuned model's answers to the same probe are, "
             "from 0 (same) upwards. A fine-tune changes style almost everywhere, so change alone is not a finding."),
            ("p-value and q-value", "The p-value is the chance of seeing a difference at least this large if the two "
             "models really behaved the same; it comes from shuffling the model labels many times. Because hundreds of "
             "probes are tested, p-values are corrected into q-values (Benjamini–Hochberg): a q-value below "
             f"{fdr:g} means that, among everything reported at that level, at most about {100 * fdr:.0f}% are expected "
             "to be false alarms."),
            ("False-discovery level", f"The audit uses {fdr:g}. A probe is <b>flagged</b> when its q-value is below this "
             "level and its effect size passes the minimum set for the audit. Auditing a model against itself flags "
             "nothing in the common case."),
            ("Concern", "A category is <b>concerning</b> only when harm shows in the tuned model's answers: more of them "
             "read as the category's harm (hostility or contempt, power-seeking, deception, unsafe help or advice, "
             "stereotyping, demeaning someone for their group) than the base model's, some group is treated worse than "
             "the others after the groups' own words are neutralised (unequal treatment), or it gets control "
             "questions wrong that the base got right. Harm is "
             "read by a harm scorer that judges meaning, not exact words; a change of style or wording alone is never a concern."),
            ("Supporting evidence", "Word-list detectors (refusal phrases, gendered roles, hostile words), the "
             "counterfactual gap and likelihood pairs (whether the model prefers stereotyped sentences) are shown "
             "beside the tests that decide, to explain them; they never make a category concerning on their own."),
            ("Counterfactual gap", "The same question is asked about different people (for example “a young woman” and "
             "“a young man”). The gap is how differently one model answers for the two; the report shows how the gap "
             "changed from base to tuned, with a 95% interval. A larger gap means the answers differ more between "
             "groups, which may be only wording (repeating the group's words): it is a sign of change, not of harm."),
            ("Clusters", "All answers are grouped by meaning. A group made almost only of the tuned model's answers is "
             "a <b>new behaviour</b>: something the tuned model says that the base model does not."),
            ("What this audit can and cannot show", "It shows measurable differences on the probes that were asked, "
             "with controlled error rates. It cannot prove the absence of a behaviour that no probe asked about, and "
             "automatic detectors and embeddings can miss nuance; read the example answers before signing."),
        ]
        for title, text in paras:
            out.append(self.P(f"<b>{title}.</b> {text}", "body"))
        return out

    # ------------------------------------------------------------------ findings

    def findings(self) -> list:
        out = self.heading("Findings", page_break=True)
        cats = self.categories()
        concerning = [c for c in cats if self.status(c) == "concerning"]
        changed = [c for c in cats if self.status(c) == "changed"]
        if not concerning and not changed:
            out.append(self.P("No category showed a change beyond sampling noise or evidence of harm.", "body"))
        else:
            out.append(self.P(
                f"{len(concerning)} concerning categor{'y' if len(concerning) == 1 else 'ies'} in order of concern, "
                f"then {len(changed)} categor{'y' if len(changed) == 1 else 'ies'} whose answers changed without evidence of harm.",
                "body"))
        probes = [p for p in _list(self.f.get("probes")) if isinstance(p, dict)]
        total = len(concerning) + len(changed)
        for i, c in enumerate(concerning + changed):
            self.check()
            self.progress(i, total, f"findings: {label(c.get('category'), 40)}")
            out += self.category_section(c, [p for p in probes if p.get("category") == c.get("category")],
                                         detailed=self.status(c) == "concerning", first=(i == 0))
        out += self.across_categories()
        return out

    def category_section(self, c: dict, probes: list[dict], *, detailed: bool, first: bool) -> list:
        from reportlab.platypus import CondPageBreak, KeepTogether

        mm = self.mm
        name = str(c.get("category", "?"))
        st = self.status(c)
        out = [CondPageBreak(70 * mm)]
        out += self.heading(f"{name}: {STATUS_WORDS[st].lower()}", 2)
        facts = (f"Rank {_int(c.get('rank'))}. {_int(c.get('changed_probes'))} of "
                 f"{_int(_first(c, 'tested_probes', 'probes'))} probes flagged as changed; change score "
                 f"{_fmt(c.get('change_score'))}; concern score {_fmt(c.get('concern_score'))} "
                 f"(q {_fmt_p(c.get('concern_q_value'))}).")
        colour = charts.STATUS_COLOURS[st]
        out.append(self.P(f"<font color='{colour}'><b>{STATUS_WORDS[st]}.</b></font> {self.M(c.get('summary') or '', 600)} "
                          f"<font color='{charts.MUTED}'>{facts}</font>", "body"))
        evidence = [e for e in _list(c.get("evidence")) if isinstance(e, dict)]
        if evidence and detailed:
            rows = [self.th("Evidence", "What was measured", "Base", "Tuned", "Effect", "p")]
            for e in evidence[:8]:
                judged = " <i>(model-judged)</i>" if e.get("model_judged") else ""
                if e.get("decides") is False:
                    judged += " <i>(supporting)</i>"
                sig = e.get("significant")
                rows.append([
                    self.P(self.M(_first(e, "name", "test", default="?"), 40) + judged, "cellb"),
                    self.P(self.M(e.get("description") or "", 500)
                           + (f"<br/><font color='{charts.MUTED}'>{self.M(e.get('method'), 80)}; probes: "
                              f"{self.M(', '.join(map(str, _list(e.get('probes'))[:6])), 300)}</font>" if e.get("method") else ""), "cell"),
                    self.P(self._val(e.get("base_value")), "cell"),
                    self.P(self._val(e.get("tuned_value")), "cell"),
                    self.P(_fmt(e.get("effect")), "cell"),
                    self.P(f"<b>{_fmt_p(e.get('p_value'))}</b>" if sig else _fmt_p(e.get("p_value")), "cell"),
                ])
            out.append(self.table(rows, [28 * mm, self.width - 98 * mm, 16 * mm, 16 * mm, 16 * mm, 22 * mm]))
        ranked = sorted(probes, key=lambda p: (not p.get("flagged"), -(_num(p.get("divergence")) or 0.0)))
        chart_rows = [(str(p.get("probe_id")), _num(p.get("divergence")) or 0.0, bool(p.get("flagged")))
                      for p in ranked[: (10 if detailed else 6)]]
        if chart_rows:
            out += [self.spacer(4), KeepTogether([self.P("<b>Most divergent probes</b>", "small"),
                                                  charts.probe_divergence(chart_rows, self.width)])]
        for p in ranked[: TOP_PROBES_CONCERNING if detailed else TOP_PROBES_CHANGED]:
            self.check()
            out += self.probe_block(p)
        if detailed:
            out += self.harm_highlights(c)
            out += self.detector_highlights(name, probes)
            out += self.counterfactual_block(name)
            out += self.pairs_block(name)
            out += self.controls_block(name)
            out += self.clusters_block(name, with_map=False)
        return out

    @staticmethod
    def _val(v: Any) -> str:
        n = _num(v)
        if n is None:
            return "–"
        return f"{n:.2f}"

    def probe_block(self, p: dict) -> list:
        from reportlab.platypus import CondPageBreak

        mm = self.mm
        out = [CondPageBreak(45 * mm)] + self.heading(f"Probe {p.get('probe_id', '?')}", 3)
        stats = (f"{self.M(p.get('pack'), 60)} · {self.M(p.get('kind'), 20)} · divergence {_fmt(p.get('divergence'), 3)} · "
                 f"effect {_fmt(p.get('effect_size'))} · p {_fmt_p(p.get('p_value'))} · q {_fmt_p(p.get('q_value'))}"
                 + (" · <b>flagged</b>" if p.get("flagged") else ""))
        out.append(self.P(f"<font color='{charts.MUTED}'>{stats}</font>", "small"))
        out.append(self.P(f"<b>Question:</b> {self.M(p.get('question') or '(not recorded)', QUESTION_LIMIT)}", "small"))
        base, tuned = self.examples_for(p)
        n = max(len(base), len(tuned))
        if n:
            rows = [self.th("Base model answers", "Tuned model answers")]
            for i in range(n):
                rows.append([self._answer_cell(base[i] if i < len(base) else ""),
                             self._answer_cell(tuned[i] if i < len(tuned) else "")])
            half = self.width / 2
            out.append(self.table(rows, [half, half], extra_style=[
                ("LINEAFTER", (0, 0), (0, -1), 0.5, self.colors.HexColor("#D1D5DB"))]))
        else:
            out.append(self.P("No answers were stored for this probe.", "small"))
        rates = _dict(p.get("detector_rates"))
        hits = [(k, _dict(v)) for k, v in rates.items() if (_num(_dict(v).get("tuned")) or 0) > (_num(_dict(v).get("base")) or 0)]
        if hits:
            out.append(self.P("Detector rates (base → tuned): " + "; ".join(
                f"{self.M(k, 40)} {_pct(v.get('base'))} → {_pct(v.get('tuned'))}" for k, v in hits[:5]), "muted"))
        out.append(self.spacer(4))
        return out

    def _answer_cell(self, text):
        cell = self.T(text, "answer", ANSWER_LIMIT)
        line = self.judge_line(text)
        return [cell, self.P(line, "muted")] if line else cell

    def harm_highlights(self, c: dict) -> list:
        """The tuned answers the harm scorer read as most harmful, so a reader sees the harm itself."""
        shown = [e for e in _list(c.get("evidence")) if isinstance(e, dict) and e.get("test") == "harm_score"
                 and e.get("significant") and _list(e.get("examples"))]
        if not shown:
            return []
        out = self.heading("Answers that show the harm", 3)
        for e in shown[:3]:
            out.append(self.P(f"<b>{self.M(e.get('name'), 40)}</b>: {self.M(e.get('description'), 300)}", "small"))
            for ex in _list(e.get("examples"))[:3]:
                ex = _dict(ex)
                out.append(self.P(f"<font color='{charts.MUTED}'>{self.M(ex.get('probe_id'), 60)} · score "
                                  f"{_fmt(ex.get('score'))}</font> {self.M(ex.get('text'), ANSWER_LIMIT)}", "answer"))
        return out

    def detector_highlights(self, category: str, probes: list[dict]) -> list:
        rows = [r for r in _list(_dict(self.f.get("detectors")).get("by_category"))
                if isinstance(r, dict) and r.get("category") == category]
        # Only detectors that fired at all; a table of 0% → 0% hides the ones that matter.
        rows = [r for r in rows if (_num(r.get("base_rate")) or 0) > 0 or (_num(r.get("tuned_rate")) or 0) > 0]
        if not rows:
            return []
        defs = {d.get("id"): d for d in _list(_dict(self.f.get("detectors")).get("definitions")) if isinstance(d, dict)}
        out = self.heading("Detector highlights", 3)
        table = [self.th("Detector", "Looks for", "Base", "Tuned", "p")]
        rows.sort(key=lambda r: -((_num(r.get("tuned_rate")) or 0) - (_num(r.get("base_rate")) or 0)))
        for r in rows[:8]:
            d = _dict(defs.get(r.get("detector")))
            table.append([
                self.T(d.get("name") or r.get("detector"), "cellb", 60),
                self.T(d.get("description") or "", "cell", 200),
                self.P(f"{_pct(r.get('base_rate'))} ({_int(r.get('base_hits'))}/{_int(r.get('base_n'))})", "cell"),
                self.P(f"{_pct(r.get('tuned_rate'))} ({_int(r.get('tuned_hits'))}/{_int(r.get('tuned_n'))})", "cell"),
                self.P(_fmt_p(r.get("p_value")), "cell"),
            ])
        mm = self.mm
        out.append(self.table(table, [34 * mm, self.width - 106 * mm, 26 * mm, 26 * mm, 20 * mm]))
        return out

    def counterfactual_block(self, category: str) -> list:
        rows = [r for r in _list(self.f.get("counterfactuals")) if isinstance(r, dict) and r.get("category") == category]
        if not rows:
            return []
        rows.sort(key=lambda r: -(_num(r.get("gap_change")) or 0))
        out = self.heading("Counterfactual gaps", 3)
        out.append(self.P("Change in how differently the model answers for different groups (tuned minus base), "
                          "with 95% bootstrap intervals; orange intervals exclude zero.", "small"))
        plot = [(f"{r.get('probe_id')} ({' / '.join(map(str, _list(r.get('groups'))))})",
                 _num(r.get("gap_change")), _num(r.get("ci_low")), _num(r.get("ci_high"))) for r in rows[:14]]
        out.append(charts.interval_plot(plot, self.width, axis_label="change in gap between groups (tuned − base)"))
        for r in rows[:3]:
            if r.get("direction") == "more":
                out.append(self.P(f"• <b>{self.M(r.get('probe_id'), 60)}</b>: {self.M(r.get('statement'), 300)} "
                                  f"(gap {_fmt(r.get('gap_base'), 3)} → {_fmt(r.get('gap_tuned'), 3)}, "
                                  f"interval {_fmt(r.get('ci_low'), 3)} to {_fmt(r.get('ci_high'), 3)}, q {_fmt_p(r.get('q_value'))})", "small"))
        return out

    def pairs_block(self, category: str) -> list:
        rows = [r for r in _list(_dict(self.f.get("likelihood_pairs")).get("by_category"))
                if isinstance(r, dict) and r.get("category") == category]
        if not rows:
            return []
        out = self.heading("Likelihood pairs", 3)
        for r in rows:
            out.append(self.P(
                f"Over {_int(r.get('pairs'))} sentence pairs, the base model preferred the more stereotyped sentence in "
                f"{_pct(r.get('share_base'))} of pairs and the tuned model in {_pct(r.get('share_tuned'))}; the mean shift "
                f"towards the stereotyped sentence is {_fmt(r.get('mean_shift'), 3)} (per-token log-probability; "
                f"sign test p {_fmt_p(r.get('sign_test_p'))}, Wilcoxon p {_fmt_p(r.get('wilcoxon_p'))}).", "small"))
        return out

    def controls_block(self, category: str) -> list:
        rows = [r for r in _list(_dict(self.f.get("controls")).get("by_category"))
                if isinstance(r, dict) and r.get("category") == category]
        if not rows:
            return []
        out = self.heading("Control questions", 3)
        for r in rows:
            out.append(self.P(self._control_sentence(r), "small"))
        return out

    @staticmethod
    def _control_sentence(r: dict) -> str:
        return (f"Accuracy on {_int(r.get('n_pairs'))} paired control answers: base {_pct(r.get('base_accuracy'))}, tuned "
                f"{_pct(r.get('tuned_accuracy'))} (drop {_pct(r.get('drop'))}; right only for the base "
                f"{_int(r.get('base_only'))}, only for the tuned model {_int(r.get('tuned_only'))}; McNemar p "
                f"{_fmt_p(r.get('mcnemar_p'))}).")

    def clusters_block(self, scope: str, *, with_map: bool) -> list:
        scopes = [s for s in _list(self.f.get("clusters")) if isinstance(s, dict) and s.get("scope") == scope]
        if not scopes:
            if with_map:
                return self.heading("Clusters of new behaviour", 3) + [self.P("Not measured in this run.", "body")]
            return []
        s = scopes[0]
        new = [c for c in _list(s.get("clusters")) if isinstance(c, dict) and c.get("new_behaviour")]
        if not new and not with_map:
            return []
        out = self.heading("Clusters of new behaviour", 3)
        if not new:
            out.append(self.P("No cluster of answers given almost only by the tuned model was found.", "small"))
        mm = self.mm
        if new:
            rows = [self.th("Cluster", "Base / tuned", "Keywords", "Example answer (tuned model)")]
            for c in new[:6]:
                ex = [e for e in _list(c.get("examples")) if isinstance(e, dict)]
                text = (ex[0].get("text") if ex else "") or ""
                rows.append([
                    self.P(f"#{self.M(c.get('id'), 12)}", "cellb"),
                    self.P(f"{_int(c.get('n_base'))} / {_int(c.get('n_tuned'))}<br/>q {_fmt_p(c.get('q_value'))}", "cell"),
                    self.T(", ".join(map(str, _list(c.get("keywords"))[:8])), "cell", 200),
                    self.T(text, "answer", 500),
                ])
            out.append(self.table(rows, [16 * mm, 22 * mm, 40 * mm, self.width - 78 * mm]))
        if with_map:
            cluster_new = {c.get("id") for c in new}
            points = [( _num(p.get("x")) or 0.0, _num(p.get("y")) or 0.0, str(p.get("role")), p.get("cluster") in cluster_new)
                      for p in _list(s.get("points"))[:20000] if isinstance(p, dict)]
            if points:
                labels = []
                for c in new[:6]:
                    members = [(x, y) for (x, y, _r, _n), p in zip(points, _list(s.get("points"))) if p.get("cluster") == c.get("id")]
                    if members:
                        labels.append((sum(m[0] for m in members) / len(members), max(m[1] for m in members), f"#{c.get('id')}"))
                from reportlab.platypus import KeepTogether

                out += [self.spacer(4), KeepTogether([
                    self.P("<b>Cluster map.</b> Every answer as a point; answers close together mean "
                           "similar things (first two principal components).", "small"),
                    charts.cluster_map(points, self.width, 78 * mm, labels)])]
        return out

    def across_categories(self) -> list:
        from reportlab.platypus import CondPageBreak

        out = [CondPageBreak(90 * self.mm)] + self.heading("Across all categories", 2)
        overall = _dict(_dict(self.f.get("controls")).get("overall"))
        out += self.heading("General ability (control questions)", 3)
        if overall:
            drop = _num(overall.get("drop")) or 0.0
            p = _num(overall.get("mcnemar_p"))
            lost = drop > 0 and p is not None and p < self.fdr
            out.append(self.P(self._control_sentence(overall) + (
                " <b>The tuned model lost general ability</b> (it forgot answers the base model knew)." if lost else ""), "small"))
        else:
            out.append(self.P("Not measured in this run.", "small"))
        pairs = [r for r in _list(_dict(self.f.get("likelihood_pairs")).get("by_category")) if isinstance(r, dict)]
        out += self.heading("Likelihood pairs by category", 3)
        if pairs:
            rows = [self.th("Category", "Pairs", "Base prefers stereotype", "Tuned prefers stereotype", "Mean shift", "Sign test p")]
            for r in pairs:
                rows.append([self.T(r.get("category"), "cellb", 60), self.P(_int(r.get("pairs")), "cell"),
                             self.P(_pct(r.get("share_base")), "cell"), self.P(_pct(r.get("share_tuned")), "cell"),
                             self.P(_fmt(r.get("mean_shift"), 3), "cell"), self.P(_fmt_p(r.get("sign_test_p")), "cell")])
            mm = self.mm
            out.append(self.table(rows, [40 * mm, 16 * mm, 34 * mm, 34 * mm, 20 * mm, self.width - 144 * mm]))
        else:
            out.append(self.P("Not measured in this run.", "small"))
        judge = self.f.get("judge")
        if isinstance(judge, dict):
            out += self.judge_block(judge)
        out += self.clusters_block("all", with_map=True)
        return out

    def judge_block(self, judge: dict) -> list:
        """The optional judge: who it is, whether it passed calibration (in plain words), its grades."""
        out = self.heading("Model-judged alignment (optional judge)", 3)
        model = _dict(judge.get("model"))
        cal = _dict(judge.get("calibration"))
        prompts = _dict(judge.get("prompts"))
        name = _first(model, "name", "file_name", "path", default="the judge model")
        ident = model.get("sha256") or model.get("server") or judge.get("judge_id") or ""
        out.append(self.P(
            f"<b>Model-judged:</b> a third language model ({self.M(name, 80)}) graded "
            f"{_int(judge.get('graded'))} answers ({self.M(judge.get('selection') or '', 200)}) for alignment and "
            f"coherence, reading its next-token probabilities over score tokens (prompts "
            f"{self.M(prompts.get('version') or '?', 40)}, {self.M(prompts.get('file') or '', 80)}). "
            f"<font color='{charts.MUTED}'>Judge identity: {self.M(ident, 90)}</font>", "small"))
        acc, auroc = _num(cal.get("accuracy")), _num(cal.get("auroc"))
        figures = (f"it agreed with the reviewer's label on {_pct(acc)} of {_int(cal.get('n'))} labelled answers "
                   f"(misaligned or not; AUROC of its alignment score {_fmt(auroc)}; required: "
                   f"{_pct(cal.get('min_accuracy'))} and {_fmt(cal.get('min_auroc'))})")
        if judge.get("trusted"):
            out.append(self.P(f"<b>The judge passed calibration:</b> {figures}. Its misaligned-answer rates enter the "
                              "concern test as model-judged evidence, beside the harm scores.", "small"))
        else:
            out.append(self.P(
                f"<font color='{charts.RED}'><b>Judge failed calibration.</b></font> Before grading this run the "
                f"judge graded a labelled calibration set, and {figures}. Its scores below are shown for "
                f"information only: <b>no verdict in this report uses them.</b> "
                f"{self.M(cal.get('reason') or '', 200)}", "small"))
        rows = [self.th("Category", "Misaligned base", "Misaligned tuned", "Base alignment", "Tuned alignment",
                        "Tuned coherence", "p")]
        for r in _list(judge.get("by_category")):
            if isinstance(r, dict):
                rows.append([self.T(r.get("category"), "cellb", 60),
                             self.P(f"{_int(r.get('base_misaligned'))}/{_int(r.get('n_base'))}", "cell"),
                             self.P(f"{_int(r.get('tuned_misaligned'))}/{_int(r.get('n_tuned'))}", "cell")]
                            + [self.P(_fmt(r.get(k), 1), "cell") for k in
                               ("base_alignment", "tuned_alignment", "tuned_coherence")]
                            + [self.P(_fmt_p(r.get("p_value")), "cell")])
        w = self.width / 7
        out.append(self.table(rows, [w] * 7))
        return out

    def judge_line(self, text) -> str:
        """The judge's grade of one shown answer, in a few words ('' when it was not graded)."""
        judge = self.f.get("judge")
        if not isinstance(judge, dict) or not isinstance(text, str):
            return ""
        index = self.__dict__.get("_judge_index")
        if index is None:
            from auditdesk.core.judge.grading import answer_text_sha

            index = {a.get("text_sha"): a for a in _list(judge.get("answers")) if isinstance(a, dict)}
            self._judge_index = index
            self._judge_sha = answer_text_sha
        g = index.get(self._judge_sha(text))
        if not g:
            return ""
        mark = "" if judge.get("trusted") else ", judge failed calibration"
        return (f"Judge (model-judged{mark}): {self.M(g.get('label'), 20)}, alignment {_fmt(g.get('alignment'), 0)}, "
                f"coherence {_fmt(g.get('coherence'), 0)}")

    # ------------------------------------------------------------------ closing sections

    def analyst_notes(self) -> list:
        out = self.heading("Analyst notes", page_break=True)
        notes = [a for a in (self.meta.annotations or []) if isinstance(a, dict)]
        if not notes:
            out.append(self.P("No analyst notes were recorded for this audit.", "body"))
            return out
        out.append(self.P("Findings the analyst confirmed or dismissed while reviewing the results, with their comments.", "body"))
        rows = [self.th("Finding", "Status", "Note", "By / when")]
        for a in notes:
            status = str(a.get("status", "")).lower()
            colour = {"confirmed": charts.RED, "dismissed": charts.MUTED}.get(status, charts.INK)
            rows.append([
                self.T(_first(a, "probe_id", "target", "finding_id", "finding", default="–"), "cellb", 80),
                self.P(f"<font color='{colour}'><b>{self.M(status or '–', 30)}</b></font>", "cell"),
                self.T(a.get("note") or "", "cell", 1500),
                self.T(" ".join(str(x) for x in (a.get("author"), a.get("created_at")) if x) or "–", "cell", 80),
            ])
        mm = self.mm
        out.append(self.table(rows, [34 * mm, 22 * mm, self.width - 92 * mm, 36 * mm]))
        return out

    def limitations_and_signoff(self) -> list:
        from reportlab.platypus import KeepTogether

        out = self.heading("Limitations", page_break=True)
        items = [str(x) for x in _list(self.f.get("limitations")) if x]
        items += [
            "The audit covers only the probes listed in Appendix A; behaviour that no probe asks about is not measured.",
            "Answers are sampled; another run with other seeds gives other answers. Statistical tests account for this "
            "variation, but a finding with a q-value near the false-discovery level may not repeat.",
            "Example answers in this report are cut to a readable length; the CSV export holds every answer in full.",
            "Right-to-left text (Arabic, Hebrew) is shown in stored character order without contextual shaping.",
        ]
        if self.settings.get("judge"):
            items.append("Scores marked model-judged come from a language model and are opinions, not measurements.")
        t = self.tally
        text_notes = []
        if t.missing_total:
            sample = " ".join(f"U+{cp:04X}" for cp, _ in t.missing.most_common(8))
            text_notes.append(
                f"{t.missing_total:,} characters in the model answers have no glyph in the report's embedded fonts and are "
                f"shown as their code instead (most frequent: {sample}). They are kept as they are in the CSV export.")
        if t.hidden_total:
            text_notes.append(
                f"{t.hidden_total:,} invisible or direction-changing characters (control characters, bidirectional "
                f"overrides, zero-width characters) are shown as visible codes such as [U+202E] so they cannot disguise text.")
        if t.truncated:
            text_notes.append(f"{t.truncated:,} long texts are shortened in this report; the note at their end says by how much.")
        if not text_notes:
            text_notes.append("Every character of the quoted answers could be drawn with the embedded fonts.")
        for x in items:
            out.append(self.P(f"• {self.M(x, 1000)}", "body"))
        out += self.heading("Text shown in this report", 3)
        for x in text_notes:
            out.append(self.P(f"• {x}", "body"))
        out.append(KeepTogether(self.signoff()))
        return out

    def signoff(self) -> list:
        """The sign-off block: name, role and date lines, and a box each for the auditor's and reviewer's signature.

        The boxes are where the PDF's signature fields go (see `_SignatureBox`), so a
        digital signature appears inside them; on paper they take a handwritten one.
        """
        from auditdesk.core.evidence.signing import AUDITOR_FIELD, REVIEWER_FIELD

        mm = self.mm
        sign = self.heading("Sign-off", 1)
        sign.append(self.P("I have reviewed the findings, the example answers and the limitations of this audit.", "body"))
        digital = bool(self.meta.signer_name)
        if digital:
            sign.append(self.P(
                f"This report is digitally signed by <b>{self.M(self.meta.signer_name, 120)}</b>"
                f"{' (' + self.M(self.meta.signer_role, 80) + ')' if self.meta.signer_role else ''}; the signature "
                "covers the whole document, including the evidence manifest in Appendix B. A reviewer can add a "
                "second signature with <font name='%s'>auditdesk sign</font>; <font name='%s'>auditdesk verify</font> "
                "checks both." % (fonts.MONO, fonts.MONO), "small"))
        else:
            sign.append(self.P(
                "Sign by hand on a printed copy, or digitally in the boxes below with "
                f"<font name='{fonts.MONO}'>auditdesk sign</font>; <font name='{fonts.MONO}'>auditdesk verify</font> "
                "checks digital signatures and the evidence files.", "small"))
        sign.append(self.spacer(4))
        box_width = self.width - 108 * mm
        rows = []
        people = (("Auditor", AUDITOR_FIELD, self.meta.signer_name or self.meta.auditor,
                   self.meta.signer_role, self.exported if digital else ""),
                  ("Reviewer / approver", REVIEWER_FIELD, "", "", ""))
        for role_name, field_name, name, role, when in people:
            rows += [
                [self.P(f"<b>{role_name}</b>", "cell"), "", "", ""],
                [self.P("Name", "muted"), self.T(name or "", "cell", 120), self.P("Role", "muted"), self.T(role or "", "cell", 80)],
                [self.P("Date", "muted"), self.T(when, "cell", 40), self.P("Signature", "muted"),
                 _SignatureBox(self, field_name, box_width - 8, 19 * mm)],
            ]
        table = self.table(rows, [34 * mm, 54 * mm, 20 * mm, box_width], header=False, zebra=False,
                           extra_style=[("LINEBELOW", (1, i), (1, i), 0.6, self.colors.HexColor(charts.INK)) for i in (1, 2, 4, 5)]
                           + [("LINEBELOW", (3, i), (3, i), 0.6, self.colors.HexColor(charts.INK)) for i in (1, 4)]
                           + [("SPAN", (0, i), (-1, i)) for i in (0, 3)]
                           + [("TOPPADDING", (0, 0), (-1, -1), 7), ("LINEBELOW", (0, -1), (-1, -1), 0, self.colors.white)])
        sign.append(table)
        if self.meta.signer_fingerprint:
            sign.append(self.P(f"Auditor's signing certificate, SHA-256: <font name='{fonts.MONO}'>{self.M(self.meta.signer_fingerprint, 64)}</font>", "muted"))
        return sign

    def appendix(self) -> list:
        mm = self.mm
        out = self.heading("Appendix A: every probe", page_break=True)
        out.append(self.P("Every probe answered by generation, with its question as sent (first variant) and its "
                          "statistics. Flagged probes are marked ●.", "small"))
        rows = [self.th("Probe", "Category / kind", "Question as sent", "Div.", "p", "q", "")]
        probes = [p for p in _list(self.f.get("probes")) if isinstance(p, dict)]
        for i, p in enumerate(probes):
            if i % 50 == 0:
                self.check()
            rows.append([
                self.T(p.get("probe_id"), "cellb", 80),
                self.P(f"{self.M(p.get('category'), 40)}<br/><font color='{charts.MUTED}'>{self.M(p.get('kind'), 20)}</font>", "cell"),
                self.T(p.get("question") or "", "cell", APPENDIX_QUESTION_LIMIT),
                self.P(_fmt(p.get("divergence"), 3), "cell"),
                self.P(_fmt_p(p.get("p_value")), "cell"),
                self.P(_fmt_p(p.get("q_value")), "cell"),
                self.P(f"<font color='{charts.TUNED_COLOUR}'>●</font>" if p.get("flagged") else "", "cell"),
            ])
        if not probes:
            out.append(self.P("No probe statistics in this findings file.", "body"))
        else:
            out.append(self.table(rows, [40 * mm, 28 * mm, self.width - 118 * mm, 14 * mm, 14 * mm, 14 * mm, 8 * mm]))
        pairs = [r for r in _list(_dict(self.f.get("likelihood_pairs")).get("pairs")) if isinstance(r, dict)]
        if pairs:
            out += self.heading("Likelihood pairs", 2)
            rows = [self.th("Probe", "Category", "Score base", "Score tuned", "Shift")]
            for r in pairs:
                rows.append([self.T(r.get("probe_id"), "cellb", 80), self.T(r.get("category"), "cell", 40),
                             self.P(_fmt(r.get("score_base"), 3), "cell"), self.P(_fmt(r.get("score_tuned"), 3), "cell"),
                             self.P(_fmt(r.get("shift"), 3), "cell")])
            out.append(self.table(rows, [50 * mm, 40 * mm, 25 * mm, 25 * mm, self.width - 140 * mm]))
        out += self.heading("Appendix B: reproducibility", page_break=True)
        command = self.meta.reproduce_command or _first(self.run, "command", "cli", default="")
        out.append(self.P("Running the same models, probe packs, settings and seeds with the same AuditDesk version gives "
                          "the same answers and the same statistics.", "body"))
        if command:
            out += [self.P("<b>Command</b>", "small"), self.T(command, "mono", 2000), self.spacer(4)]
        digests = [(f"{w} SHA-256", self.T(_digest(self.model(r)), "mono", 120))
                   for r, w in (("base", "Base model"), ("tuned", "Tuned model"))]
        out.append(self.kv_table(digests + [
            ("AuditDesk version", self.meta.tool_version or str(_dict(self.f.get("tool")).get("version", "–"))),
            ("Findings generated", str(self.f.get("generated_at") or "–")),
            ("Findings format", f"{self.f.get('format')} version {self.f.get('version')}"),
        ], 40 * mm))
        out += [self.spacer(6), self.P("<b>Analysis settings</b>", "small"),
                self.T(json.dumps(self.settings, ensure_ascii=False, sort_keys=True, indent=1, default=str), "mono", 3000)]
        run_copy = {k: v for k, v in self.run.items() if k not in ("packs",)}
        out += [self.spacer(4), self.P("<b>Run configuration</b>", "small"),
                self.T(json.dumps(run_copy, ensure_ascii=False, sort_keys=True, indent=1, default=str), "mono", 6000)]
        out += self.evidence_manifest()
        return out

    def evidence_manifest(self) -> list:
        """The evidence manifest in print: the same SHA-256 values as the file attached to this PDF."""
        m = self.meta.manifest
        if not m:
            return []
        mm = self.mm
        out = self.heading("Evidence manifest", 2)
        out.append(self.P(
            "SHA-256 of every file this report rests on. The same list is attached to this PDF as "
            f"<font name='{fonts.MONO}'>auditdesk-manifest.json</font> and is covered by its digital signatures; "
            f"<font name='{fonts.MONO}'>auditdesk verify REPORT.pdf --evidence FOLDER</font> compares the files "
            "with it.", "small"))
        rows = [self.th("What", "File and SHA-256")]
        mono = fonts.MONO

        def entry(name: Any, digest: Any, note: str = "") -> Any:
            lines = [self.M(name, 160)] if name else []
            if digest:
                lines.append(f"<font name='{mono}' size='7.2'>{self.M(digest, 80)}</font>")
            if note:
                lines.append(f"<font color='{charts.MUTED}'>{self.M(note, 300)}</font>")
            return self.P("<br/>".join(lines) or "–", "cell")

        words = {"findings": "Findings (JSON)", "answers": "Answers (CSV)"}
        for f in _list(m.get("files")):
            rows.append([self.P(words.get(f.get("role"), str(f.get("role"))), "cellb"), entry(f.get("name"), f.get("sha256"))])
        for pk in _list(m.get("probe_packs")):
            what = self.T(f"Probe pack {pk.get('pack_id')} v{pk.get('version')}", "cellb", 120)
            note = "" if pk.get("sha256") else f"file not included: {pk.get('note') or 'not found'}"
            rows.append([what, entry(pk.get("name"), pk.get("sha256"), note)])
            rows.append([self.P("", "cell"), entry("content hash (independent of YAML layout)", pk.get("content_hash"))])
        for role, model in sorted(_dict(m.get("models")).items()):
            rows.append([self.P(f"{role.capitalize()} model", "cellb"),
                         entry(model.get("name"), model.get("sha256"),
                               f"ran on the server {model.get('server')}" if model.get("server") else "")])
        rows.append([self.P("Settings fingerprint", "cellb"),
                     entry("over the models, packs, sampling and engine settings, prompt format and AuditDesk version",
                           m.get("settings_fingerprint"))])
        for key, value in sorted(_dict(m.get("scorers")).items()):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            rows.append([self.T(key.replace("_", " ").capitalize(), "cellb", 60), self.T(text, "mono", 300)])
        out.append(self.table(rows, [34 * mm, self.width - 34 * mm]))
        out.append(self.spacer(3))
        out.append(self.P(f"Manifest written {self.M(m.get('created'), 40)} for audit run {self.M(m.get('run_id'), 12)} "
                          f"(AuditDesk {self.M(m.get('auditdesk_version'), 20)}).", "muted"))
        return out

    def framework_mapping(self) -> list:
        """Appendix C: where this report can support items of the EU AI Act, NIST AI RMF and ISO/IEC 42001."""
        from reportlab.platypus import KeepTogether

        mapping = self.meta.frameworks
        if not mapping:
            return []
        mm = self.mm
        out = self.heading("Appendix C: framework mapping", page_break=True)
        out.append(self.P(self.M(mapping.get("disclaimer"), 1200), "body"))
        out.append(self.P(f"Mapping: {self.M(mapping.get('title'), 120)} (id {self.M(mapping.get('id'), 60)}, "
                          f"version {self.M(mapping.get('version'), 20)}). Item titles are paraphrased; the official "
                          "texts are authoritative.", "muted"))
        for fw in _list(mapping.get("frameworks")):
            if not isinstance(fw, dict):
                continue
            heading = self.heading(str(fw.get("name") or ""), 2)
            rows = [self.th("Item", "Report sections", "This report can support", "It cannot cover")]
            for item in _list(fw.get("items")):
                if not isinstance(item, dict):
                    continue
                rows.append([
                    self.P(f"<b>{self.M(item.get('ref'), 40)}</b><br/>"
                           f"<font color='{charts.MUTED}'>{self.M(item.get('title'), 200)}</font>", "cell"),
                    self.T(", ".join(str(x) for x in _list(item.get("sections"))), "cell", 200),
                    self.T(item.get("supports"), "cell", 800),
                    self.T(item.get("cannot_cover"), "cell", 800),
                ])
            table = self.table(rows, [38 * mm, 26 * mm, (self.width - 64 * mm) / 2, (self.width - 64 * mm) / 2])
            out.append(KeepTogether(heading + [table]))  # never a framework's name alone at the foot of a page
        return out


def _signature_box_class():
    from reportlab.platypus import Flowable

    class SignatureBox(Flowable):
        """An empty, lightly framed box that records where it was drawn, for the PDF signature field."""

        def __init__(self, report: "_Report", field_name: str, width: float, height: float):
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


def _SignatureBox(report: "_Report", field_name: str, width: float, height: float):
    """The signature box flowable (a function so that reportlab is imported only when a report is made)."""
    return _signature_box_class()(report, field_name, width, height)


# --------------------------------------------------------------------------- page furniture


def _page_furniture(report: _Report):
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


def build_report(
    findings: dict,
    answers: Iterable[dict],
    out_pdf: Path | str,
    *,
    meta: ReportMeta,
    reporter=None,
    cancel: CancelToken | None = None,
) -> ReportResult:
    """Write the audit report PDF for `findings` (and the stored `answers`) to `out_pdf`, atomically."""
    started = time.perf_counter()
    if not isinstance(findings, dict) or findings.get("format") != FORMAT:
        raise AuditDeskError("this file is not an AuditDesk findings file, so no report can be made from it.")
    if findings.get("version") not in findings_contract.SUPPORTED_VERSIONS:
        raise AuditDeskError(
            f"these findings were written by a newer AuditDesk (format version {label(findings.get('version'), 12)}); "
            "update AuditDesk to make a report from them.")
    try:
        from reportlab.platypus import BaseDocTemplate, Frame, NextPageTemplate, PageTemplate
    except ImportError as exc:  # pragma: no cover - reportlab is a runtime dependency
        raise AuditDeskError("the PDF library reportlab is not installed; reinstall AuditDesk.") from exc
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm

    from auditdesk.core.report.dates import reproducible

    if not meta.tool_version:
        from auditdesk import __version__

        meta.tool_version = __version__
    if meta.frameworks is None:  # every report carries the mapping; export_run may name another file
        from auditdesk.core.evidence.frameworks import load_mapping

        meta.frameworks = load_mapping()
    r = _Report(findings, answers, meta, cancel, reporter)
    r.page_count = 0
    steps = [r.cover, r.executive_summary, r.what_was_tested, r.how_to_read, r.findings, r.analyst_notes, r.appendix,
             r.framework_mapping]
    parts = []
    for i, step in enumerate(steps):
        r.check()
        r.progress(i, len(steps) + 2, step.__name__.replace("_", " "))
        parts.append(step())
    # Limitations come last in the making (they report what the other sections had to change in the text).
    closing = r.limitations_and_signoff()
    story = [NextPageTemplate("body")] + parts[0] + [x for part in parts[1:6] for x in part] + closing + parts[6] + parts[7]

    out_pdf = Path(out_pdf)
    base_name = label(f"{meta.title}", 200)

    class Doc(BaseDocTemplate):
        _outline_level = -1

        def afterFlowable(self, flowable):
            r.check()
            outline = getattr(flowable, "_outline", None)
            if outline and outline[1] <= 2:
                text, level = outline
                # PDF outlines may not skip a level (a subsection straight after a section is fine).
                level = min(level - 1, self._outline_level + 1)
                self._outline_level = level
                key = f"h{id(flowable)}"
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(text, key, level=level, closed=level > 0)

    with atomic_path(out_pdf) as tmp:
        doc = Doc(
            str(tmp), pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=20 * mm, bottomMargin=20 * mm,
            title=base_name, author=label(meta.auditor or "AuditDesk", 120),
            subject=label(f"Behaviour audit of {r.model_name('tuned')} against {r.model_name('base')}", 200),
            creator=f"AuditDesk {meta.tool_version}", keywords=["AuditDesk", "model audit", "fine-tuning"],
            # The creation date is the export time; a fixed one (and a byte-reproducible file) only when
            # SOURCE_DATE_EPOCH asks for it, which reportlab then reads itself.
            producer=f"AuditDesk {meta.tool_version} (reportlab)", invariant=reproducible(),
        )
        frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="main", leftPadding=0, rightPadding=0,
                      topPadding=0, bottomPadding=0)
        doc.addPageTemplates([PageTemplate(id="cover", frames=[frame]), PageTemplate(id="body", frames=[frame])])
        r.progress(len(steps), len(steps) + 2, "laying out pages")
        doc.build(story, canvasmaker=_page_furniture(r))
    r.progress(len(steps) + 2, len(steps) + 2, "done")
    return ReportResult(
        path=out_pdf, pages=r.page_count, seconds=time.perf_counter() - started,
        missing_glyphs=r.tally.missing_total, hidden_characters=r.tally.hidden_total, truncated_texts=r.tally.truncated,
        signature_boxes=dict(r.signature_boxes),
    )
