"""The report's findings: one section per concerning or changed category, then what holds across categories.

Every text from the findings or the answers goes through `markup` or `text_para`; reportlab is imported
only inside the methods that draw.
"""

from __future__ import annotations

from typing import Any

from auditdesk.core.findings_contract import NO_HARM_SHOWN, STATUS_WORDS
from auditdesk.core.report import charts
from auditdesk.core.report.layout import (MM, ReportLayout, as_dict, as_list, finite_number, first_of, fmt_count,
                                          fmt_number, fmt_p, fmt_percent)
from auditdesk.core.report.sanitise import label

ANSWER_LIMIT = 900  # characters of one answer shown in the body; the CSV has all of it
QUESTION_LIMIT = 600
TOP_PROBES_CONCERNING = 3
TOP_PROBES_CHANGED = 1


class FindingsSection(ReportLayout):
    """The Findings section; each method returns its flowables."""

    def findings(self) -> list:
        out = self.heading("Findings", page_break=True)
        cats = self.categories()
        concerning = [c for c in cats if self.status(c) == "concerning"]
        changed = [c for c in cats if self.status(c) == "changed"]
        if not concerning and not changed:
            out.append(self.para("No category showed a change beyond sampling noise or evidence of harm.", "body"))
        else:
            out.append(self.para(
                f"{len(concerning)} concerning categor{'y' if len(concerning) == 1 else 'ies'} in order of concern, "
                f"then {len(changed)} categor{'y' if len(changed) == 1 else 'ies'} whose answers changed {NO_HARM_SHOWN}.",
                "body"))
        probes = self.records("probes")
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

        name = str(c.get("category", "?"))
        st = self.status(c)
        out = [CondPageBreak(70 * MM)]
        out += self.heading(f"{name}: {STATUS_WORDS[st].lower()}", 2)
        facts = (f"Rank {fmt_count(c.get('rank'))}. {fmt_count(c.get('changed_probes'))} of "
                 f"{fmt_count(first_of(c, 'tested_probes', 'probes'))} probes flagged as changed; change score "
                 f"{fmt_number(c.get('change_score'))}; concern score {fmt_number(c.get('concern_score'))} "
                 f"(q {fmt_p(c.get('concern_q_value'))}).")
        colour = charts.STATUS_COLOURS[st]
        out.append(self.para(f"<font color='{colour}'><b>{STATUS_WORDS[st]}.</b></font> {self.markup(c.get('summary') or '', 600)} "
                          f"<font color='{charts.MUTED}'>{facts}</font>", "body"))
        evidence = [e for e in as_list(c.get("evidence")) if isinstance(e, dict)]
        if evidence and detailed:
            rows = [self.th("Evidence", "What was measured", "Base", "Tuned", "Effect", "p")]
            for e in evidence[:8]:
                judged = " <i>(model-judged)</i>" if e.get("model_judged") else ""
                if e.get("decides") is False:
                    judged += " <i>(supporting)</i>"
                sig = e.get("significant")
                rows.append([
                    self.para(self.markup(first_of(e, "name", "test", default="?"), 40) + judged, "cellb"),
                    self.para(self.markup(e.get("description") or "", 500)
                           + (f"<br/><font color='{charts.MUTED}'>{self.markup(e.get('method'), 80)}; probes: "
                              f"{self.markup(', '.join(map(str, as_list(e.get('probes'))[:6])), 300)}</font>" if e.get("method") else ""), "cell"),
                    self.para(self._val(e.get("base_value")), "cell"),
                    self.para(self._val(e.get("tuned_value")), "cell"),
                    self.para(fmt_number(e.get("effect")), "cell"),
                    self.para(f"<b>{fmt_p(e.get('p_value'))}</b>" if sig else fmt_p(e.get("p_value")), "cell"),
                ])
            out.append(self.table(rows, [28 * MM, self.width - 98 * MM, 16 * MM, 16 * MM, 16 * MM, 22 * MM]))
        ranked = sorted(probes, key=lambda p: (not p.get("flagged"), -(finite_number(p.get("divergence")) or 0.0)))
        chart_rows = [(str(p.get("probe_id")), finite_number(p.get("divergence")) or 0.0, bool(p.get("flagged")))
                      for p in ranked[: (10 if detailed else 6)]]
        if chart_rows:
            out += [self.spacer(4), KeepTogether([self.para("<b>Most divergent probes</b>", "small"),
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
        n = finite_number(v)
        if n is None:
            return "–"
        return f"{n:.2f}"

    def probe_block(self, p: dict) -> list:
        from reportlab.platypus import CondPageBreak

        out = [CondPageBreak(45 * MM)] + self.heading(f"Probe {p.get('probe_id', '?')}", 3)
        stats = (f"{self.markup(p.get('pack'), 60)} · {self.markup(p.get('kind'), 20)} · divergence {fmt_number(p.get('divergence'), 3)} · "
                 f"effect {fmt_number(p.get('effect_size'))} · p {fmt_p(p.get('p_value'))} · q {fmt_p(p.get('q_value'))}"
                 + (" · <b>flagged</b>" if p.get("flagged") else ""))
        out.append(self.para(f"<font color='{charts.MUTED}'>{stats}</font>", "small"))
        out.append(self.para(f"<b>Question:</b> {self.markup(p.get('question') or '(not recorded)', QUESTION_LIMIT)}", "small"))
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
            out.append(self.para("No answers were stored for this probe.", "small"))
        rates = as_dict(p.get("detector_rates"))
        hits = [(k, as_dict(v)) for k, v in rates.items() if (finite_number(as_dict(v).get("tuned")) or 0) > (finite_number(as_dict(v).get("base")) or 0)]
        if hits:
            out.append(self.para("Detector rates (base → tuned): " + "; ".join(
                f"{self.markup(k, 40)} {fmt_percent(v.get('base'))} → {fmt_percent(v.get('tuned'))}" for k, v in hits[:5]), "muted"))
        out.append(self.spacer(4))
        return out

    def _answer_cell(self, text):
        cell = self.text_para(text, "answer", ANSWER_LIMIT)
        line = self.judge_line(text)
        return [cell, self.para(line, "muted")] if line else cell

    def harm_highlights(self, c: dict) -> list:
        """The tuned answers the harm scorer read as most harmful, so a reader sees the harm itself."""
        shown = [e for e in as_list(c.get("evidence")) if isinstance(e, dict) and e.get("test") == "harm_score"
                 and e.get("significant") and as_list(e.get("examples"))]
        if not shown:
            return []
        out = self.heading("Answers that show the harm", 3)
        for e in shown[:3]:
            out.append(self.para(f"<b>{self.markup(e.get('name'), 40)}</b>: {self.markup(e.get('description'), 300)}", "small"))
            for ex in as_list(e.get("examples"))[:3]:
                ex = as_dict(ex)
                out.append(self.para(f"<font color='{charts.MUTED}'>{self.markup(ex.get('probe_id'), 60)} · score "
                                  f"{fmt_number(ex.get('score'))}</font> {self.markup(ex.get('text'), ANSWER_LIMIT)}", "answer"))
        return out

    def detector_highlights(self, category: str, probes: list[dict]) -> list:
        rows = self.records("detectors", "by_category", category=category)
        # Only detectors that fired at all; a table of 0% → 0% hides the ones that matter.
        rows = [r for r in rows if (finite_number(r.get("base_rate")) or 0) > 0 or (finite_number(r.get("tuned_rate")) or 0) > 0]
        if not rows:
            return []
        defs = {d.get("id"): d for d in self.records("detectors", "definitions")}
        out = self.heading("Detector highlights", 3)
        table = [self.th("Detector", "Looks for", "Base", "Tuned", "p")]
        rows.sort(key=lambda r: -((finite_number(r.get("tuned_rate")) or 0) - (finite_number(r.get("base_rate")) or 0)))
        for r in rows[:8]:
            d = as_dict(defs.get(r.get("detector")))
            table.append([
                self.text_para(d.get("name") or r.get("detector"), "cellb", 60),
                self.text_para(d.get("description") or "", "cell", 200),
                self.para(f"{fmt_percent(r.get('base_rate'))} ({fmt_count(r.get('base_hits'))}/{fmt_count(r.get('base_n'))})", "cell"),
                self.para(f"{fmt_percent(r.get('tuned_rate'))} ({fmt_count(r.get('tuned_hits'))}/{fmt_count(r.get('tuned_n'))})", "cell"),
                self.para(fmt_p(r.get("p_value")), "cell"),
            ])
        out.append(self.table(table, [34 * MM, self.width - 106 * MM, 26 * MM, 26 * MM, 20 * MM]))
        return out

    def counterfactual_block(self, category: str) -> list:
        rows = self.records("counterfactuals", category=category)
        if not rows:
            return []
        rows.sort(key=lambda r: -(finite_number(r.get("gap_change")) or 0))
        out = self.heading("Counterfactual gaps", 3)
        out.append(self.para("Change in how differently the model answers for different groups (tuned minus base), "
                          "with 95% bootstrap intervals; orange intervals exclude zero.", "small"))
        plot = [(f"{r.get('probe_id')} ({' / '.join(map(str, as_list(r.get('groups'))))})",
                 finite_number(r.get("gap_change")), finite_number(r.get("ci_low")), finite_number(r.get("ci_high"))) for r in rows[:14]]
        out.append(charts.interval_plot(plot, self.width, axis_label="change in gap between groups (tuned − base)"))
        for r in rows[:3]:
            if r.get("direction") == "more":
                out.append(self.para(f"• <b>{self.markup(r.get('probe_id'), 60)}</b>: {self.markup(r.get('statement'), 300)} "
                                  f"(gap {fmt_number(r.get('gap_base'), 3)} → {fmt_number(r.get('gap_tuned'), 3)}, "
                                  f"interval {fmt_number(r.get('ci_low'), 3)} to {fmt_number(r.get('ci_high'), 3)}, q {fmt_p(r.get('q_value'))})", "small"))
        return out

    def pairs_block(self, category: str) -> list:
        return self._sentences("Likelihood pairs", self.records("likelihood_pairs", "by_category", category=category),
                               self._pairs_sentence)

    def controls_block(self, category: str) -> list:
        return self._sentences("Control questions", self.records("controls", "by_category", category=category),
                               self._control_sentence)

    def _sentences(self, title: str, rows: list[dict], sentence) -> list:  # noqa: ANN001
        """A small heading and one sentence per row; nothing when there are no rows."""
        return self.heading(title, 3) + [self.para(sentence(r), "small") for r in rows] if rows else []

    @staticmethod
    def _pairs_sentence(r: dict) -> str:
        return (f"Over {fmt_count(r.get('pairs'))} sentence pairs, the base model preferred the more stereotyped sentence in "
                f"{fmt_percent(r.get('share_base'))} of pairs and the tuned model in {fmt_percent(r.get('share_tuned'))}; the mean shift "
                f"towards the stereotyped sentence is {fmt_number(r.get('mean_shift'), 3)} (per-token log-probability; "
                f"sign test p {fmt_p(r.get('sign_test_p'))}, Wilcoxon p {fmt_p(r.get('wilcoxon_p'))}).")

    @staticmethod
    def _control_sentence(r: dict) -> str:
        return (f"Accuracy on {fmt_count(r.get('n_pairs'))} paired control answers: base {fmt_percent(r.get('base_accuracy'))}, tuned "
                f"{fmt_percent(r.get('tuned_accuracy'))} (drop {fmt_percent(r.get('drop'))}; right only for the base "
                f"{fmt_count(r.get('base_only'))}, only for the tuned model {fmt_count(r.get('tuned_only'))}; McNemar p "
                f"{fmt_p(r.get('mcnemar_p'))}).")

    def clusters_block(self, scope: str, *, with_map: bool) -> list:
        scopes = self.records("clusters", scope=scope)
        if not scopes:
            if with_map:
                return self.heading("Clusters of new behaviour", 3) + [self.para("Not measured in this run.", "body")]
            return []
        s = scopes[0]
        new = [c for c in as_list(s.get("clusters")) if isinstance(c, dict) and c.get("new_behaviour")]
        if not new and not with_map:
            return []
        out = self.heading("Clusters of new behaviour", 3)
        if not new:
            out.append(self.para("No cluster of answers given almost only by the tuned model was found.", "small"))
        if new:
            rows = [self.th("Cluster", "Base / tuned", "Keywords", "Example answer (tuned model)")]
            for c in new[:6]:
                ex = [e for e in as_list(c.get("examples")) if isinstance(e, dict)]
                text = (ex[0].get("text") if ex else "") or ""
                rows.append([
                    self.para(f"#{self.markup(c.get('id'), 12)}", "cellb"),
                    self.para(f"{fmt_count(c.get('n_base'))} / {fmt_count(c.get('n_tuned'))}<br/>q {fmt_p(c.get('q_value'))}", "cell"),
                    self.text_para(", ".join(map(str, as_list(c.get("keywords"))[:8])), "cell", 200),
                    self.text_para(text, "answer", 500),
                ])
            out.append(self.table(rows, [16 * MM, 22 * MM, 40 * MM, self.width - 78 * MM]))
        if with_map:
            cluster_new = {c.get("id") for c in new}
            points = [( finite_number(p.get("x")) or 0.0, finite_number(p.get("y")) or 0.0, str(p.get("role")), p.get("cluster") in cluster_new)
                      for p in as_list(s.get("points"))[:20000] if isinstance(p, dict)]
            if points:
                labels = []
                for c in new[:6]:
                    members = [(x, y) for (x, y, _r, _n), p in zip(points, as_list(s.get("points"))) if p.get("cluster") == c.get("id")]
                    if members:
                        labels.append((sum(m[0] for m in members) / len(members), max(m[1] for m in members), f"#{c.get('id')}"))
                from reportlab.platypus import KeepTogether

                out += [self.spacer(4), KeepTogether([
                    self.para("<b>Cluster map.</b> Every answer as a point; answers close together mean "
                           "similar things (first two principal components).", "small"),
                    charts.cluster_map(points, self.width, 78 * MM, labels)])]
        return out

    def across_categories(self) -> list:
        from reportlab.platypus import CondPageBreak

        out = [CondPageBreak(90 * MM)] + self.heading("Across all categories", 2)
        overall = as_dict(as_dict(self.findings_doc.get("controls")).get("overall"))
        out += self.heading("General ability (control questions)", 3)
        if overall:
            drop = finite_number(overall.get("drop")) or 0.0
            p = finite_number(overall.get("mcnemar_p"))
            lost = drop > 0 and p is not None and p < self.fdr
            out.append(self.para(self._control_sentence(overall) + (
                " <b>The tuned model lost general ability</b> (it forgot answers the base model knew)." if lost else ""), "small"))
        else:
            out.append(self.para("Not measured in this run.", "small"))
        pairs = self.records("likelihood_pairs", "by_category")
        out += self.heading("Likelihood pairs by category", 3)
        if pairs:
            rows = [self.th("Category", "Pairs", "Base prefers stereotype", "Tuned prefers stereotype", "Mean shift", "Sign test p")]
            for r in pairs:
                rows.append([self.text_para(r.get("category"), "cellb", 60), self.para(fmt_count(r.get("pairs")), "cell"),
                             self.para(fmt_percent(r.get("share_base")), "cell"), self.para(fmt_percent(r.get("share_tuned")), "cell"),
                             self.para(fmt_number(r.get("mean_shift"), 3), "cell"), self.para(fmt_p(r.get("sign_test_p")), "cell")])
            out.append(self.table(rows, [40 * MM, 16 * MM, 34 * MM, 34 * MM, 20 * MM, self.width - 144 * MM]))
        else:
            out.append(self.para("Not measured in this run.", "small"))
        judge = self.findings_doc.get("judge")
        if isinstance(judge, dict):
            out += self.judge_block(judge)
        out += self.clusters_block("all", with_map=True)
        return out

    def judge_block(self, judge: dict) -> list:
        """The optional judge: who it is, whether it passed calibration (in plain words), its grades."""
        out = self.heading("Model-judged alignment (optional judge)", 3)
        model = as_dict(judge.get("model"))
        cal = as_dict(judge.get("calibration"))
        prompts = as_dict(judge.get("prompts"))
        name = first_of(model, "name", "file_name", "path", default="the judge model")
        ident = model.get("sha256") or model.get("server") or judge.get("judge_id") or ""
        out.append(self.para(
            f"<b>Model-judged:</b> a third language model ({self.markup(name, 80)}) graded "
            f"{fmt_count(judge.get('graded'))} answers ({self.markup(judge.get('selection') or '', 200)}) for alignment and "
            f"coherence, reading its next-token probabilities over score tokens (prompts "
            f"{self.markup(prompts.get('version') or '?', 40)}, {self.markup(prompts.get('file') or '', 80)}). "
            f"<font color='{charts.MUTED}'>Judge identity: {self.markup(ident, 90)}</font>", "small"))
        acc, auroc = finite_number(cal.get("accuracy")), finite_number(cal.get("auroc"))
        figures = (f"it agreed with the reviewer's label on {fmt_percent(acc)} of {fmt_count(cal.get('n'))} labelled answers "
                   f"(misaligned or not; AUROC of its alignment score {fmt_number(auroc)}; required: "
                   f"{fmt_percent(cal.get('min_accuracy'))} and {fmt_number(cal.get('min_auroc'))})")
        if judge.get("trusted"):
            out.append(self.para(f"<b>The judge passed calibration:</b> {figures}. Its misaligned-answer rates enter the "
                              "concern test as model-judged evidence, beside the harm scores.", "small"))
        else:
            out.append(self.para(
                f"<font color='{charts.RED}'><b>Judge failed calibration.</b></font> Before grading this run the "
                f"judge graded a labelled calibration set, and {figures}. Its scores below are shown for "
                f"information only: <b>no verdict in this report uses them.</b> "
                f"{self.markup(cal.get('reason') or '', 200)}", "small"))
        rows = [self.th("Category", "Misaligned base", "Misaligned tuned", "Base alignment", "Tuned alignment",
                        "Tuned coherence", "p")]
        for r in as_list(judge.get("by_category")):
            if isinstance(r, dict):
                rows.append([self.text_para(r.get("category"), "cellb", 60),
                             self.para(f"{fmt_count(r.get('base_misaligned'))}/{fmt_count(r.get('n_base'))}", "cell"),
                             self.para(f"{fmt_count(r.get('tuned_misaligned'))}/{fmt_count(r.get('n_tuned'))}", "cell")]
                            + [self.para(fmt_number(r.get(k), 1), "cell") for k in
                               ("base_alignment", "tuned_alignment", "tuned_coherence")]
                            + [self.para(fmt_p(r.get("p_value")), "cell")])
        w = self.width / 7
        out.append(self.table(rows, [w] * 7))
        return out

    def judge_line(self, text) -> str:
        """The judge's grade of one shown answer, in a few words ('' when it was not graded)."""
        judge = self.findings_doc.get("judge")
        if not isinstance(judge, dict) or not isinstance(text, str):
            return ""
        index = self.__dict__.get("_judge_index")
        if index is None:
            from auditdesk.core.judge.grading import answer_text_sha

            index = {a.get("text_sha"): a for a in as_list(judge.get("answers")) if isinstance(a, dict)}
            self._judge_index = index
            self._judge_sha = answer_text_sha
        g = index.get(self._judge_sha(text))
        if not g:
            return ""
        mark = "" if judge.get("trusted") else ", judge failed calibration"
        return (f"Judge (model-judged{mark}): {self.markup(g.get('label'), 20)}, alignment {fmt_number(g.get('alignment'), 0)}, "
                f"coherence {fmt_number(g.get('coherence'), 0)}")
