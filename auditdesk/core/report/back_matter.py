"""The report's closing sections: analyst notes, limitations, sign-off and the appendices.

Every text from the findings or the answers goes through `markup` or `text_para`; reportlab is imported
only inside the methods that draw.
"""

from __future__ import annotations

import json
from typing import Any

from auditdesk.core.report import charts, fonts
from auditdesk.core.report.layout import (MM, ReportLayout, as_dict, as_list, first_of, fmt_number, fmt_p, model_digest,
                                          signature_box)

APPENDIX_QUESTION_LIMIT = 240


class BackMatter(ReportLayout):
    """Sections after the findings; each method returns its flowables."""

    def analyst_notes(self) -> list:
        out = self.heading("Analyst notes", page_break=True)
        notes = [a for a in (self.meta.annotations or []) if isinstance(a, dict)]
        if not notes:
            out.append(self.para("No analyst notes were recorded for this audit.", "body"))
            return out
        out.append(self.para("Findings the analyst confirmed or dismissed while reviewing the results, with their comments.", "body"))
        rows = [self.th("Finding", "Status", "Note", "By / when")]
        for a in notes:
            status = str(a.get("status", "")).lower()
            colour = {"confirmed": charts.RED, "dismissed": charts.MUTED}.get(status, charts.INK)
            rows.append([
                self.text_para(first_of(a, "probe_id", "target", "finding_id", "finding", default="–"), "cellb", 80),
                self.para(f"<font color='{colour}'><b>{self.markup(status or '–', 30)}</b></font>", "cell"),
                self.text_para(a.get("note") or "", "cell", 1500),
                self.text_para(" ".join(str(x) for x in (a.get("author"), a.get("created_at")) if x) or "–", "cell", 80),
            ])
        out.append(self.table(rows, [34 * MM, 22 * MM, self.width - 92 * MM, 36 * MM]))
        return out

    def limitations_and_signoff(self) -> list:
        from reportlab.platypus import KeepTogether

        out = self.heading("Limitations", page_break=True)
        items = [str(x) for x in as_list(self.findings_doc.get("limitations")) if x]
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
            out.append(self.para(f"• {self.markup(x, 1000)}", "body"))
        out += self.heading("Text shown in this report", 3)
        for x in text_notes:
            out.append(self.para(f"• {x}", "body"))
        out.append(KeepTogether(self.signoff()))
        return out

    def signoff(self) -> list:
        """The sign-off block: name, role and date lines, and a box each for the auditor's and reviewer's signature.

        The boxes are where the PDF's signature fields go (see `layout.signature_box`), so a
        digital signature appears inside them; on paper they take a handwritten one.
        """
        from auditdesk.core.evidence.signing import AUDITOR_FIELD, REVIEWER_FIELD

        sign = self.heading("Sign-off", 1)
        sign.append(self.para("I have reviewed the findings, the example answers and the limitations of this audit.", "body"))
        digital = bool(self.meta.signer_name)
        if digital:
            sign.append(self.para(
                f"This report is digitally signed by <b>{self.markup(self.meta.signer_name, 120)}</b>"
                f"{' (' + self.markup(self.meta.signer_role, 80) + ')' if self.meta.signer_role else ''}; the signature "
                "covers the whole document, including the evidence manifest in Appendix B. A reviewer can add a "
                "second signature with <font name='%s'>auditdesk sign</font>; <font name='%s'>auditdesk verify</font> "
                "checks both." % (fonts.MONO, fonts.MONO), "small"))
        else:
            sign.append(self.para(
                "Sign by hand on a printed copy, or digitally in the boxes below with "
                f"<font name='{fonts.MONO}'>auditdesk sign</font>; <font name='{fonts.MONO}'>auditdesk verify</font> "
                "checks digital signatures and the evidence files.", "small"))
        sign.append(self.spacer(4))
        box_width = self.width - 108 * MM
        rows = []
        people = (("Auditor", AUDITOR_FIELD, self.meta.signer_name or self.meta.auditor,
                   self.meta.signer_role, self.exported if digital else ""),
                  ("Reviewer / approver", REVIEWER_FIELD, "", "", ""))
        for role_name, field_name, name, role, when in people:
            rows += [
                [self.para(f"<b>{role_name}</b>", "cell"), "", "", ""],
                [self.para("Name", "muted"), self.text_para(name or "", "cell", 120), self.para("Role", "muted"), self.text_para(role or "", "cell", 80)],
                [self.para("Date", "muted"), self.text_para(when, "cell", 40), self.para("Signature", "muted"),
                 signature_box(self, field_name, box_width - 8, 19 * MM)],
            ]
        table = self.table(rows, [34 * MM, 54 * MM, 20 * MM, box_width], header=False, zebra=False,
                           extra_style=[("LINEBELOW", (1, i), (1, i), 0.6, self.colors.HexColor(charts.INK)) for i in (1, 2, 4, 5)]
                           + [("LINEBELOW", (3, i), (3, i), 0.6, self.colors.HexColor(charts.INK)) for i in (1, 4)]
                           + [("SPAN", (0, i), (-1, i)) for i in (0, 3)]
                           + [("TOPPADDING", (0, 0), (-1, -1), 7), ("LINEBELOW", (0, -1), (-1, -1), 0, self.colors.white)])
        sign.append(table)
        if self.meta.signer_fingerprint:
            sign.append(self.para(f"Auditor's signing certificate, SHA-256: <font name='{fonts.MONO}'>{self.markup(self.meta.signer_fingerprint, 64)}</font>", "muted"))
        return sign

    def appendix(self) -> list:
        out = self.heading("Appendix A: every probe", page_break=True)
        out.append(self.para("Every probe answered by generation, with its question as sent (first variant) and its "
                          "statistics. Flagged probes are marked ●.", "small"))
        rows = [self.th("Probe", "Category / kind", "Question as sent", "Div.", "p", "q", "")]
        probes = self.records("probes")
        for i, p in enumerate(probes):
            if i % 50 == 0:
                self.check()
            rows.append([
                self.text_para(p.get("probe_id"), "cellb", 80),
                self.para(f"{self.markup(p.get('category'), 40)}<br/><font color='{charts.MUTED}'>{self.markup(p.get('kind'), 20)}</font>", "cell"),
                self.text_para(p.get("question") or "", "cell", APPENDIX_QUESTION_LIMIT),
                self.para(fmt_number(p.get("divergence"), 3), "cell"),
                self.para(fmt_p(p.get("p_value")), "cell"),
                self.para(fmt_p(p.get("q_value")), "cell"),
                self.para(f"<font color='{charts.TUNED_COLOUR}'>●</font>" if p.get("flagged") else "", "cell"),
            ])
        if not probes:
            out.append(self.para("No probe statistics in this findings file.", "body"))
        else:
            out.append(self.table(rows, [40 * MM, 28 * MM, self.width - 118 * MM, 14 * MM, 14 * MM, 14 * MM, 8 * MM]))
        pairs = self.records("likelihood_pairs", "pairs")
        if pairs:
            out += self.heading("Likelihood pairs", 2)
            rows = [self.th("Probe", "Category", "Score base", "Score tuned", "Shift")]
            for r in pairs:
                rows.append([self.text_para(r.get("probe_id"), "cellb", 80), self.text_para(r.get("category"), "cell", 40),
                             self.para(fmt_number(r.get("score_base"), 3), "cell"), self.para(fmt_number(r.get("score_tuned"), 3), "cell"),
                             self.para(fmt_number(r.get("shift"), 3), "cell")])
            out.append(self.table(rows, [50 * MM, 40 * MM, 25 * MM, 25 * MM, self.width - 140 * MM]))
        out += self.heading("Appendix B: reproducibility", page_break=True)
        command = self.meta.reproduce_command or first_of(self.run, "command", "cli", default="")
        out.append(self.para("Running this command on the same models, with the same AuditDesk and llama.cpp versions, on a "
                             "computer with the same kind of processor gives the same answers and the same statistics "
                             "(another kind of processor can round differently, so a few answers may differ).", "body"))
        cut = int(self.run.get("answers_cut_by_time") or 0)
        if cut:
            out.append(self.para(f"<b>{cut} answers were cut by the time limit.</b> Where such an answer ends depends on "
                                 "the computer's speed and load, so running the command again may not give them again; "
                                 "a higher <font name='%s'>--time-limit</font> avoids it." % fonts.MONO, "body"))
        if command:
            out += [self.para("<b>Command</b>", "small"), self.text_para(command, "mono", 2000), self.spacer(4)]
        digests = [(f"{w} SHA-256", self.text_para(model_digest(self.model(r)), "mono", 120))
                   for r, w in (("base", "Base model"), ("tuned", "Tuned model"))]
        out.append(self.kv_table(digests + [
            ("AuditDesk version", self.meta.tool_version or str(as_dict(self.findings_doc.get("tool")).get("version", "–"))),
            ("Findings generated", str(self.findings_doc.get("generated_at") or "–")),
            ("Findings format", f"{self.findings_doc.get('format')} version {self.findings_doc.get('version')}"),
        ], 40 * MM))
        out += [self.spacer(6), self.para("<b>Analysis settings</b>", "small"),
                self.text_para(json.dumps(self.settings, ensure_ascii=False, sort_keys=True, indent=1, default=str), "mono", 3000)]
        run_copy = {k: v for k, v in self.run.items() if k not in ("packs",)}
        out += [self.spacer(4), self.para("<b>Run configuration</b>", "small"),
                self.text_para(json.dumps(run_copy, ensure_ascii=False, sort_keys=True, indent=1, default=str), "mono", 6000)]
        out += self.evidence_manifest()
        return out

    def evidence_manifest(self) -> list:
        """The evidence manifest in print: the same SHA-256 values as the file attached to this PDF."""
        m = self.meta.manifest
        if not m:
            return []
        out = self.heading("Evidence manifest", 2)
        out.append(self.para(
            "SHA-256 of every file this report rests on. The same list is attached to this PDF as "
            f"<font name='{fonts.MONO}'>auditdesk-manifest.json</font> and is covered by its digital signatures; "
            f"<font name='{fonts.MONO}'>auditdesk verify REPORT.pdf --evidence FOLDER</font> compares the files "
            "with it.", "small"))
        rows = [self.th("What", "File and SHA-256")]
        mono = fonts.MONO

        def entry(name: Any, digest: Any, note: str = "") -> Any:
            lines = [self.markup(name, 160)] if name else []
            if digest:
                lines.append(f"<font name='{mono}' size='7.2'>{self.markup(digest, 80)}</font>")
            if note:
                lines.append(f"<font color='{charts.MUTED}'>{self.markup(note, 300)}</font>")
            return self.para("<br/>".join(lines) or "–", "cell")

        words = {"findings": "Findings (JSON)", "answers": "Answers (CSV)"}
        for f in as_list(m.get("files")):
            rows.append([self.para(words.get(f.get("role"), str(f.get("role"))), "cellb"), entry(f.get("name"), f.get("sha256"))])
        for pk in as_list(m.get("probe_packs")):
            what = self.text_para(f"Probe pack {pk.get('pack_id')} v{pk.get('version')}", "cellb", 120)
            note = "" if pk.get("sha256") else f"file not included: {pk.get('note') or 'not found'}"
            rows.append([what, entry(pk.get("name"), pk.get("sha256"), note)])
            rows.append([self.para("", "cell"), entry("content hash (independent of YAML layout)", pk.get("content_hash"))])
        for role, model in sorted(as_dict(m.get("models")).items()):
            rows.append([self.para(f"{role.capitalize()} model", "cellb"),
                         entry(model.get("name"), model.get("sha256"),
                               f"ran on the server {model.get('server')}" if model.get("server") else "")])
        rows.append([self.para("Settings fingerprint", "cellb"),
                     entry("over the models, packs, sampling and engine settings, prompt format and AuditDesk version",
                           m.get("settings_fingerprint"))])
        for key, value in sorted(as_dict(m.get("scorers")).items()):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            rows.append([self.text_para(key.replace("_", " ").capitalize(), "cellb", 60), self.text_para(text, "mono", 300)])
        out.append(self.table(rows, [34 * MM, self.width - 34 * MM]))
        out.append(self.spacer(3))
        out.append(self.para(f"Manifest written {self.markup(m.get('created'), 40)} for audit run {self.markup(m.get('run_id'), 12)} "
                          f"(AuditDesk {self.markup(m.get('auditdesk_version'), 20)}).", "muted"))
        return out

    def framework_mapping(self) -> list:
        """Appendix C: where this report can support items of the EU AI Act, NIST AI RMF and ISO/IEC 42001."""
        from reportlab.platypus import KeepTogether

        mapping = self.meta.frameworks
        if not mapping:
            return []
        out = self.heading("Appendix C: framework mapping", page_break=True)
        out.append(self.para(self.markup(mapping.get("disclaimer"), 1200), "body"))
        out.append(self.para(f"Mapping: {self.markup(mapping.get('title'), 120)} (id {self.markup(mapping.get('id'), 60)}, "
                          f"version {self.markup(mapping.get('version'), 20)}). Item titles are paraphrased; the official "
                          "texts are authoritative.", "muted"))
        for fw in as_list(mapping.get("frameworks")):
            if not isinstance(fw, dict):
                continue
            heading = self.heading(str(fw.get("name") or ""), 2)
            rows = [self.th("Item", "Report sections", "This report can support", "It cannot cover")]
            for item in as_list(fw.get("items")):
                if not isinstance(item, dict):
                    continue
                rows.append([
                    self.para(f"<b>{self.markup(item.get('ref'), 40)}</b><br/>"
                           f"<font color='{charts.MUTED}'>{self.markup(item.get('title'), 200)}</font>", "cell"),
                    self.text_para(", ".join(str(x) for x in as_list(item.get("sections"))), "cell", 200),
                    self.text_para(item.get("supports"), "cell", 800),
                    self.text_para(item.get("cannot_cover"), "cell", 800),
                ])
            table = self.table(rows, [38 * MM, 26 * MM, (self.width - 64 * MM) / 2, (self.width - 64 * MM) / 2])
            out.append(KeepTogether(heading + [table]))  # never a framework's name alone at the foot of a page
        return out
