"""Assembles the audit report PDF from a findings document and the stored answers.

The sections live in front_matter, findings_section and back_matter, the styles,
tables and page furniture in layout. Every text that came from a model, a probe
pack or a findings file goes through `sanitise.to_markup` before it reaches
reportlab; nothing here may read a file named in such text or create links or
images from it. The PDF is written to a temporary file beside the target and
renamed only when complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from auditdesk.core import findings_contract
from auditdesk.core.errors import AuditDeskError
from auditdesk.core.findings_contract import FORMAT
from auditdesk.core.progress import CancelToken
from auditdesk.core.report.atomic import atomic_path
from auditdesk.core.report.back_matter import BackMatter
from auditdesk.core.report.findings_section import FindingsSection
from auditdesk.core.report.front_matter import FrontMatter
from auditdesk.core.report.layout import MM, page_furniture
from auditdesk.core.report.sanitise import label

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


class _Report(FrontMatter, FindingsSection, BackMatter):
    """One report being made: the layout and facts of `ReportLayout` plus every section."""


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
            str(tmp), pagesize=A4, leftMargin=20 * MM, rightMargin=20 * MM, topMargin=20 * MM, bottomMargin=20 * MM,
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
        doc.build(story, canvasmaker=page_furniture(r))
    r.progress(len(steps) + 2, len(steps) + 2, "done")
    return ReportResult(
        path=out_pdf, pages=r.page_count, seconds=time.perf_counter() - started,
        missing_glyphs=r.tally.missing_total, hidden_characters=r.tally.hidden_total, truncated_texts=r.tally.truncated,
        signature_boxes=dict(r.signature_boxes),
    )
