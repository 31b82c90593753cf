"""Multiple testing across probes and categories: how an audit of hundreds of probes keeps its false-discovery level.

Whatever changes here must keep a model audited against itself reporting anything with probability at most `fdr`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from auditdesk.core.analysis.stats import bh_qvalues, fisher_combined_pvalue, simes_pvalue


def selective_probe_qvalues(categories: Sequence[str], p_values: Sequence[float | None], fdr: float) -> dict:
    """Two-level divergence testing: categories first, then probes inside the discovered ones.

    Testing probes across the whole audit *and* categories as a second family
    would give a null audit about twice the false-discovery level of reporting
    something. Instead (Benjamini & Bogomolov, 2014): each category gets one
    p-value, min(1, 2 * min(Fisher, Simes)) of its probes' p-values (Fisher
    catches small changes everywhere, Simes one strong probe; the factor 2 pays
    for using both); BH over categories selects R of m; inside a selected
    category probes are BH-adjusted and multiplied by m / R. When the models are
    the same, an audit reports anything with probability at most `fdr`.
    """
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, (cat, p) in enumerate(zip(categories, p_values)):
        if p is not None:
            by_cat[cat].append(i)
    names = sorted(by_cat)
    family_p = []
    for cat in names:
        ps = [p_values[i] for i in by_cat[cat]]
        family_p.append(min(1.0, 2.0 * min(fisher_combined_pvalue(ps), simes_pvalue(ps))))
    family_q = bh_qvalues(family_p)
    selected = {cat: q < fdr for cat, q in zip(names, family_q)}
    factor = len(names) / max(1, sum(selected.values()))
    q_values: list[float | None] = [None] * len(p_values)
    for cat in names:
        idx = by_cat[cat]
        # Never below the category's own q-value, so "q < fdr" alone still means flagged-worthy.
        for i, q in zip(idx, bh_qvalues([p_values[i] for i in idx])):
            q_values[i] = min(1.0, max(q * factor, family_q[names.index(cat)]))
    return {
        "q_values": q_values,
        "selected": selected,
        "p_values": dict(zip(names, family_p)),
        "q_values_by_category": dict(zip(names, family_q)),
    }
