"""The report's findings: one section per concerning or changed category, then what holds across categories."""

from __future__ import annotations

from typing import Any

from auditdesk.core.findings_contract import STATUS_WORDS
from auditdesk.core.report import charts
from auditdesk.core.report.layout import ReportLayout, _dict, _first, _fmt, _fmt_p, _int, _list, _num, _pct
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
