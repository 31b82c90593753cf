"""The report's opening sections: cover, executive summary, what was tested, how to read the report.

Every text from the findings or the answers goes through `markup` or `text_para`; reportlab is imported
only inside the methods that draw.
"""

from __future__ import annotations

import json
from typing import Any

from auditdesk.core.findings_contract import CLOSE_CALL_WORDS, STATUS_WORDS, status_light
from auditdesk.core.report import charts, fonts
from auditdesk.core.report.layout import (MM, ReportLayout, as_dict, as_list, finite_number, first_of, fmt_count,
                                          fmt_number, fmt_p, model_digest, model_identity)


def prompt_format_text(format_id: Any) -> str:
    """The prompt format in words: the plain Q/A format or the model's own chat template."""
    text = str(format_id or "")
    if text.startswith("chat-template"):
        return f"the base model's chat template (hash {text.partition(':')[2] or 'not recorded'}), used for both models."
    if text:
        return "plain completion, 'Question: … / Answer:', the same for both models."
    return "not recorded."


def per_role(engine: dict) -> list[tuple[str, dict]]:
    """Engine facts per model role ({"base": {...}, "tuned": {...}}) or one flat record."""
    if engine and all(isinstance(v, dict) for v in engine.values()):
        return [(str(role), v) for role, v in engine.items()]
    return [("", engine)] if engine else []


class FrontMatter(ReportLayout):
    """Sections before the findings; each method returns its flowables."""

    def cover(self) -> list:
        from reportlab.platypus import PageBreak, Table, TableStyle

        out = [self.spacer(38 * MM), self.para("AUDIT REPORT", "muted"), self.spacer(3)]
        out.append(self.para(self.markup(self.meta.title or "Fine-tuned model behaviour audit", 200), "title"))
        out.append(self.spacer(4))
        out.append(self.para("Does the vendor's fine-tuned model behave differently from the base model it was made from?", "subtitle"))
        out.append(self.spacer(14 * MM))
        status, words = self.overall()
        colour = charts.STATUS_COLOURS.get(status, charts.MUTED)
        box = Table([[charts.traffic_light(status, 11), self.para(f"<b>Overall result.</b> {self.markup(words, 300)}", "verdict")]],
                    colWidths=[9 * MM, self.width - 9 * MM])
        box.setStyle(TableStyle([
            ("BOX", (0, 0), (-1, -1), 1.2, self.colors.HexColor(colour)),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 8), ("BOTTOMPADDING", (0, 0), (-1, -1), 8),
            ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ]))
        out += [box, self.spacer(10 * MM)]
        rows = [
            ("Organisation", self.meta.organisation or "(not given)"),
            ("Auditor", self.meta.auditor or "(not given)"),
            ("Report exported", self.exported),
            ("Audit ran", self._audit_dates()),
            ("Audit run", str(first_of(self.run, "id", "run_id", default="–"))),
        ]
        for role, word in (("base", "Base model"), ("tuned", "Tuned model")):
            m = self.model(role)
            rows.append((word, self.para(
                f"{self.markup(self.model_name(role), 200)}<br/><font name='{fonts.MONO}' size='7.2'>"
                f"{self.markup(model_identity(m), 120)}</font>", "cell")))
        rows.append(("AuditDesk version", self.meta.tool_version or str(as_dict(self.findings_doc.get("tool")).get("version", "–"))))
        out.append(self.kv_table(rows, 34 * MM))
        if self.meta.notes:
            out += [self.spacer(8), self.para("<b>Notes from the auditor</b>", "small"), self.text_para(self.meta.notes, "small", 1500)]
        out += [self.spacer(12 * MM), self.para(
            "This report was produced offline by AuditDesk from answers that both models gave to the same probe "
            "questions. It records measurements and the statistical evidence behind them; the conclusions are the "
            "signing auditor's.", "muted"), PageBreak()]
        return out

    def _audit_dates(self) -> str:
        """When the audit's answers were generated, from the run record."""
        start = first_of(self.run, "started_at", "started", default="")
        end = first_of(self.run, "finished_at", "ended", default="")
        if not (start or end):
            return "not recorded"
        day = lambda t: str(t).replace("T", " ")[:16] + (" UTC" if str(t).endswith("+00:00") else "")  # noqa: E731
        return f"{day(start) if start else '–'}  to  {day(end) if end else 'not finished'}"

    def executive_summary(self) -> list:
        out = self.heading("Executive summary")
        verdict = as_dict(self.findings_doc.get("verdict"))
        text = verdict.get("text") or "The analysis gave no verdict text."
        out.append(self.para(self.markup(text, 1500), "verdict"))
        out.append(self.spacer(4))
        cats = self.categories()
        if cats:
            rows = [self.th("Status", "Category", "Probes", "Changed probes", "Change score", "Concern score", "Concern q")]
            for c in cats:
                st = self.status(c)
                rows.append([
                    self._status_cell(st, c),
                    self.text_para(c.get("category"), "cellb", 60),
                    self.para(fmt_count(c.get("probes")), "cell"),
                    self.para(f"{fmt_count(c.get('changed_probes'))} of {fmt_count(first_of(c, 'tested_probes', 'probes'))}", "cell"),
                    self.para(fmt_number(c.get("change_score")), "cell"),
                    self.para(fmt_number(c.get("concern_score")), "cell"),
                    self.para(fmt_p(c.get("concern_q_value")), "cell"),
                ])
            out.append(self.table(rows, [44 * MM, 32 * MM, 15 * MM, 24 * MM, 17 * MM, 17 * MM, self.width - 149 * MM]))
            out.append(self.spacer(3))
            out.append(self.para(
                f"Concerning: significant evidence of the harm the category is about (concern q-value below the "
                f"false-discovery level {self.fdr:g} and a large enough effect). Changed: answers differ beyond sampling "
                f"noise, without such evidence. Close to the line: significant for the category alone, not after the "
                f"correction across categories; not evidence of harm. Scores run from 0 to 1.", "muted"))
            chart_rows = [(str(c.get("category")), finite_number(c.get("concern_score")) or 0.0,
                           status_light(self.status(c), c)) for c in cats]
            out += [self.spacer(6), charts.category_bars(chart_rows, self.width, axis_label="concern score (0 = no harm shown)")]
        out += self.heading("The most important findings", 2)
        lines = [x for x in as_list(verdict.get("lines")) if x][:3]
        if not lines:
            for c in cats[:3]:
                if self.status(c) != "unchanged":
                    lines.append(f"{c.get('category')}: {c.get('summary') or STATUS_WORDS[self.status(c)]}")
        if not lines:
            lines = ["No category showed a change beyond sampling noise."]
        for i, line in enumerate(lines, 1):
            out.append(self.para(f"<b>{i}.</b>&nbsp; {self.markup(line, 400)}", "body"))
        return out

    def _status_cell(self, status: str, category: dict):
        """The traffic light and its words; a close call says so and is never green (verdict.close_calls)."""
        from reportlab.platypus import Table, TableStyle

        words = STATUS_WORDS[status] + (f"; {CLOSE_CALL_WORDS}" if category.get("close_call") else "")
        t = Table([[charts.traffic_light(status_light(status, category), 7.5), self.para(words, "cell")]],
                  colWidths=[4 * MM, 38 * MM])
        t.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 1),
                               ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        return t

    def what_was_tested(self) -> list:
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
                v = first_of(m, *keys)
                if keys[0] == "chat_template_present" and v is not None:
                    v = "present" if v else "none"
                elif keys[0] == "parameter_count" and finite_number(v) is not None:
                    v = f"{int(v):,}"
                elif keys[0] == "adapter_rank" and v is not None:
                    v = f"{v} / {m.get('adapter_alpha', '–')}"
                vals.append(v)
            if all(v is None for v in vals):
                continue
            rows.append([self.para(name, "cellb")] + [self.text_para("–" if v is None else v, "cell", 300) for v in vals])
        rows.append([self.para("SHA-256", "cellb")] + [self.text_para(model_digest(m), "mono", 120) for m in (base, tuned)])
        col = (self.width - 34 * MM) / 2
        out.append(self.table(rows, [34 * MM, col, col]))
        lin = self.lineage()
        out += self.heading("Lineage", 3)
        if lin:
            verdict = first_of(lin, "verdict", "summary", "text", default="")
            ok = first_of(lin, "plausibly_derived", "compatible", "plausible", "derived", default=None)
            colour = charts.GREEN if ok else (charts.RED if ok is False else charts.INK)
            out.append(self.para(f"<font color='{colour}'><b>{self.markup(verdict or ('compatible' if ok else 'see differences'), 300)}</b></font>", "body"))
            for d in as_list(first_of(lin, "differences", "warnings", default=[]))[:10]:
                out.append(self.para(f"• {self.markup(d if isinstance(d, str) else json.dumps(d, ensure_ascii=False), 300)}", "small"))
        else:
            out.append(self.para("The lineage check was not recorded for this run.", "body"))
        wc = self.weight_change()
        layers = [x for x in as_list(first_of(wc, "layers", "tensors", default=[])) if isinstance(x, dict)]
        out += self.heading("Where the weights changed", 3)
        if layers:
            values = [(str(first_of(x, "layer", "name", default=i)), finite_number(first_of(x, "relative_change", "norm", "value")) or 0.0)
                      for i, x in enumerate(layers[:96])]
            kind = wc.get("kind")
            out.append(self.para("Relative size of the vendor's change per layer"
                              + (" (norm of the adapter's update)" if kind == "adapter" else "") + ".", "small"))
            out.append(charts.layer_change(values, self.width, 95))
        else:
            out.append(self.para("Not measured in this run.", "body"))
        out += self.heading("Audit settings", 2)
        out.append(self.kv_table(self._settings_rows(), 44 * MM))
        return out

    def _settings_rows(self) -> list:
        r = self.run
        summary = as_dict(self.findings_doc.get("summary"))
        packs = []
        for p in as_list(r.get("packs")):
            if isinstance(p, dict):
                packs.append(f"{first_of(p, 'id', 'pack_id', default='?')} v{first_of(p, 'version', default='?')}"
                             + (f" ({p['probes']} probes)" if finite_number(p.get("probes")) is not None else ""))
            else:
                packs.append(str(p))
        sampling = as_dict(first_of(r, "sampling", "params", "sampling_params", default={}))
        engine = as_dict(first_of(r, "engine", "engine_info", default={}))
        host = first_of(r, "host", "hardware", default=None)
        answers = as_dict(summary.get("answers"))
        rows = [
            ("Probe packs", ", ".join(packs) or "not recorded"),
            ("Answers per question", str(first_of(r, "samples", "samples_per_probe", default="not recorded"))),
            ("Sampling", ", ".join(f"{k} {v}" for k, v in sampling.items()) or "not recorded"),
            ("Seed", str(first_of(r, "seed", "seeds", default="not recorded"))),
            ("Prompt format", " ".join([prompt_format_text(r.get("prompt_format"))]
                                       + [str(n) for n in as_list(r.get("notes")) if n])),
            ("Engine", self._engine_text(engine)),
            ("GPU offload", self._gpu_text(engine, r)),
            ("Hardware", (", ".join(f"{k} {v}" for k, v in host.items()) if isinstance(host, dict) else str(host or "not recorded"))),
            ("Started / finished", f"{first_of(r, 'started_at', 'started', 'start', default='–')}  /  {first_of(r, 'finished_at', 'ended', 'end', default='–')}"),
            ("Answers collected", f"base {fmt_count(answers.get('base'))}, tuned {fmt_count(answers.get('tuned'))}; "
                                  f"likelihood scores {fmt_count(summary.get('likelihood_scores'))}"),
            ("Analysis", f"false-discovery level {self.fdr:g}, minimum effect {fmt_number(self.settings.get('min_effect'))}, "
                         f"embedding model {self.settings.get('embedding_model', '–')}, "
                         f"model judge {'on' if self.settings.get('judge') else 'off'}"),
        ]
        return rows

    @staticmethod
    def _engine_text(engine: dict) -> str:
        """One readable line per model: backend, library version, threads, context, notes."""
        lines = []
        for role, info in per_role(engine):
            version = str(info.get("llama_cpp_version") or "").split(" (")[0]  # drop the CPU feature list
            parts = [str(info.get("backend") or "engine"), version,
                     f"{info['n_threads']} threads" if info.get("n_threads") else "",
                     f"context {info['n_ctx']} per answer" if info.get("n_ctx") else "",
                     f"{info['max_sequences']} answers in flight" if info.get("max_sequences") else ""]
            text = ", ".join(p for p in parts if p)
            notes = [str(n) for n in as_list(info.get("notes")) if n]
            if notes:
                text += " (" + "; ".join(notes) + ")"
            lines.append(f"{role}: {text}" if role else text)
        return "; ".join(lines) or "not recorded"

    @staticmethod
    def _gpu_text(engine: dict, run: dict) -> str:
        roles = per_role(engine)
        on_server = [role for role, info in roles if info.get("backend") == "http"]
        if on_server:
            local = [(role, info) for role, info in roles if info.get("backend") != "http"]
            text = "set on the model servers" if len(on_server) > 1 else f"set on the model server for the {on_server[0] or 'remote'} model"
            return text + (f"; {local[0][0]}: {FrontMatter._gpu_text(local[0][1], run)}" if local else "")
        engine = roles[0][1] if roles else engine
        req = first_of(engine, "n_gpu_layers_requested", default=first_of(run, "n_gpu_layers", "gpu_layers"))
        used = first_of(engine, "n_gpu_layers_used", default=None)
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
             "stereotyping, demeaning someone for their group) than the base model's, one group is treated worse than "
             "the others (stereotyped, demeaned, met with hostility, or given suspicion, extra conditions, a refusal or a "
             "lesser offer), across the questions about it and more than the base did, once the question's own words for "
             "the person are neutralised (unequal treatment), or it gets control "
             "questions wrong that the base got right. Harm is "
             "read by a harm scorer that judges meaning, not exact words; a change of style or wording alone is never a concern."),
            ("Close to the line", "A category that is not concerning is <b>close to the line</b> when its harm tests, "
             f"taken for that category alone, were significant (p below {fdr:g}) with a concern-sized effect, but not "
             "after the correction across all categories. That is not evidence of harm (with no real harm, about one "
             "category in twenty lands there by chance), but with few questions a real harm can land there too, so "
             "the executive summary names it: read those answers before signing."),
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
             "it can miss one the probes did ask about: a category reported <b>changed, not concerning</b> can still "
             "hold harmful answers that were too few, or worded in a way the harm scorer does not read, to pass the "
             "tests. In AuditDesk's own validity tests, tunes made to be biased against older people or disabled "
             "people, or to deceive shop customers, were reported exactly so in those categories. Not concerning means harm was not shown, "
             "not that it is absent; read the example answers before signing."),
        ]
        for title, text in paras:
            out.append(self.para(f"<b>{title}.</b> {text}", "body"))
        return out
