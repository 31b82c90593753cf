"""Small, checked statistical helpers the analysis builds on.

Every function returns plain floats (never NaN for a p-value: a test that
cannot be run returns None) and documents its sidedness. Nothing here reads
answers or models; it is pure arithmetic on numbers given to it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def bh_qvalues(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (q-values); None entries stay None.

    q_(i) = min over j >= i of p_(j) * m / j, capped at 1, with m the number of
    real p-values. A hypothesis is discovered at level alpha when q < alpha.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    if m == 0:
        return out
    ps = np.array([float(p_values[i]) for i in idx])
    order = np.argsort(ps, kind="mergesort")
    ranked = ps[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q_sorted = np.minimum(q_sorted, 1.0)
    for rank, pos in enumerate(order):
        out[idx[pos]] = float(q_sorted[rank])
    return out


def fisher_combined_pvalue(p_values: Sequence[float]) -> float | None:
    """Fisher's method: -2 sum log p ~ chi2(2k) for independent p-values."""
    ps = [min(max(float(p), 1e-300), 1.0) for p in p_values if p is not None]
    if not ps:
        return None
    from scipy.stats import chi2

    stat = -2.0 * sum(math.log(p) for p in ps)
    return float(chi2.sf(stat, 2 * len(ps)))


def simes_pvalue(p_values: Sequence[float]) -> float | None:
    """Simes' combination: min over i of k * p_(i) / i (valid under independence or PRDS)."""
    ps = sorted(float(p) for p in p_values if p is not None)
    if not ps:
        return None
    k = len(ps)
    return float(min(1.0, min(k * p / (i + 1) for i, p in enumerate(ps))))


def fisher_exact(a_hits: int, a_n: int, b_hits: int, b_n: int, alternative: str = "two-sided") -> float | None:
    """Fisher's exact test on hits/total of two groups.

    `alternative="greater"` tests whether group b's rate is higher than group a's
    (b is the tuned model by convention); "less" whether it is lower.
    """
    if a_n <= 0 or b_n <= 0:
        return None
    from scipy.stats import fisher_exact as _fisher

    # Rows: tuned, base; columns: hit, miss. "greater" = odds of a hit higher in tuned.
    table = [[b_hits, b_n - b_hits], [a_hits, a_n - a_hits]]
    return float(_fisher(table, alternative=alternative).pvalue)


def mcnemar_exact(base_only: int, tuned_only: int, alternative: str = "greater") -> float | None:
    """Exact McNemar test on the discordant pairs of paired correctness.

    `base_only`: pairs the base got right and the tuned model wrong. With
    alternative="greater" this tests whether the tuned model loses more answers
    than it gains (a one-sided binomial test on the discordant pairs).
    """
    n = base_only + tuned_only
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    alt = {"greater": "greater", "less": "less", "two-sided": "two-sided"}[alternative]
    return float(binomtest(base_only, n, 0.5, alternative=alt).pvalue)


def sign_test(diffs: Sequence[float], alternative: str = "greater") -> float | None:
    """Sign test of paired differences (zeros dropped); "greater" = mostly positive."""
    d = [x for x in diffs if x != 0 and not math.isnan(x)]
    if not diffs:
        return None
    if not d:
        return 1.0
    from scipy.stats import binomtest

    pos = sum(1 for x in d if x > 0)
    return float(binomtest(pos, len(d), 0.5, alternative=alternative).pvalue)


def wilcoxon_signed_rank(diffs: Sequence[float], alternative: str = "greater") -> float | None:
    """Wilcoxon signed-rank test of paired differences; 1.0 when all are zero."""
    d = np.asarray([x for x in diffs if not math.isnan(x)], dtype=float)
    if d.size == 0:
        return None
    if np.all(np.abs(d) < 1e-12):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, zero_method="wilcox", alternative=alternative).pvalue)


def mann_whitney(a: Sequence[float], b: Sequence[float], alternative: str = "less") -> float | None:
    """Mann–Whitney U test of b against a; "less" = b tends to be smaller than a."""
    if len(a) == 0 or len(b) == 0:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(b, a, alternative=alternative).pvalue)


def clean_number(x: float | None, digits: int = 6) -> float | None:
    """A JSON-safe float to `digits` significant figures (None for missing, NaN or infinite).

    Significant figures, not decimals, so a tiny p-value never rounds to zero.
    """
    if x is None:
        return None
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return None
    return float(f"{x:.{digits}g}")
