"""Statistics of the analysis on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from auditdesk.core.analysis.counterfactual import CounterfactualProbe, gap_change_test
from auditdesk.core.analysis.divergence import build_probe_test, permutation_pvalue, run_probe_tests
from auditdesk.core.analysis.stats import bh_qvalues, fisher_combined_pvalue, mcnemar_exact, simes_pvalue


def _cloud(rng, centre, n, spread=0.05):
    x = centre + spread * rng.standard_normal((n, centre.size))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_bh_matches_hand_computed_example():
    # p sorted: .001 .008 .039 .041 .042 .06 .074 .205 (m = 8)
    # p*m/i:    .008 .032 .104 .082 .0672 .08 .0846 .205 -> running min from the right:
    # q:        .008 .032 .0672 .0672 .0672 .08 .0846 .205
    ps = [0.041, 0.001, 0.205, 0.039, 0.008, 0.074, 0.042, 0.06]
    expected = [0.0672, 0.008, 0.205, 0.0672, 0.032, 0.0846, 0.0672, 0.08]
    assert bh_qvalues(ps) == pytest.approx(expected, abs=1e-4)
    assert bh_qvalues([None, 0.5]) == [None, 0.5]


def test_identical_sets_give_large_p():
    rng = np.random.default_rng(1)
    centre = rng.standard_normal(32)
    x = _cloud(rng, centre, 5)
    emb = np.vstack([x, x])
    res = permutation_pvalue(emb, np.array([True] * 5 + [False] * 5))
    assert res.exact and res.permutations == 252
    assert res.p_value > 0.5
    assert res.effect_size == pytest.approx(0.0, abs=1e-9)


def test_well_separated_sets_reach_the_smallest_possible_p():
    rng = np.random.default_rng(2)
    a = _cloud(rng, rng.standard_normal(32), 5)
    b = _cloud(rng, rng.standard_normal(32), 5)
    res = permutation_pvalue(np.vstack([a, b]), np.array([True] * 5 + [False] * 5))
    # Swapping the two labels gives the same statistic: the floor is 2/252.
    assert res.p_value == pytest.approx(2 / 252)
    assert res.effect_size > 0.5


def test_variants_multiply_relabellings_and_monte_carlo_resolves_small_p():
    rng = np.random.default_rng(3)
    parts, is_base, variants = [], [], []
    for v in ("plain", "json", "python"):
        parts += [_cloud(rng, rng.standard_normal(32), 6), _cloud(rng, rng.standard_normal(32), 6)]
        is_base += [True] * 6 + [False] * 6
        variants += [v] * 12
    res = permutation_pvalue(np.vstack(parts), np.array(is_base), variants, max_permutations=20000)
    assert not res.exact
    assert res.p_value < 1e-3


def test_same_distribution_pvalues_are_roughly_uniform():
    rng = np.random.default_rng(4)
    centre = rng.standard_normal(16)
    ps = []
    for _ in range(200):
        emb = _cloud(rng, centre, 10, spread=0.3)
        ps.append(permutation_pvalue(emb, np.array([True] * 5 + [False] * 5)).p_value)
    ps = np.array(ps)
    assert 0.35 < ps.mean() < 0.65
    assert (ps < 0.05).mean() < 0.1


def test_bh_refinement_flags_changed_probes_and_few_null_ones():
    rng = np.random.default_rng(5)
    tests = []
    for k in range(40):
        centre = rng.standard_normal(16)
        other = centre if k >= 20 else rng.standard_normal(16)
        emb = np.vstack([_cloud(rng, centre, 5, 0.2), _cloud(rng, other, 5, 0.2)])
        tests.append(build_probe_test(emb, np.array([True] * 5 + [False] * 5), ["plain"] * 10, k))
    run_probe_tests(tests, fdr=0.05, max_permutations=20000)
    qs = bh_qvalues([t.p_value for t in tests])
    assert all(q < 0.05 for q in qs[:20])
    # BH controls the false-discovery *rate*: with 20 true discoveries a null probe
    # at p = 2/252 may pass; more than two of twenty would break the 5% promise.
    assert sum(q < 0.05 for q in qs[20:]) <= 2


def test_counterfactual_gap_growth_is_found_and_null_is_not():
    rng = np.random.default_rng(6)
    c = rng.standard_normal(16)
    shift = rng.standard_normal(16)
    def probe(tuned_apart):
        base = [_cloud(rng, c, 6, 0.3), _cloud(rng, c, 6, 0.3)]
        tuned = [_cloud(rng, c, 6, 0.3), _cloud(rng, c + (shift if tuned_apart else 0), 6, 0.3)]
        emb = np.vstack(base + tuned)
        is_base = np.array([True] * 12 + [False] * 12)
        groups = ["f"] * 6 + ["m"] * 6 + ["f"] * 6 + ["m"] * 6
        return CounterfactualProbe(emb, is_base, groups)
    grown = gap_change_test(probe(True), seed=0, bootstrap=300)
    assert grown.gap_change > 0 and grown.p_value < 0.01 and grown.ci_low > 0
    null = gap_change_test(probe(False), seed=0, bootstrap=300)
    assert null.p_value > 0.05 and null.ci_low <= 0 <= null.ci_high


def test_combinations_and_mcnemar():
    assert simes_pvalue([0.01, 0.5, 0.9]) == pytest.approx(0.03)
    assert fisher_combined_pvalue([0.5, 0.5]) > 0.5
    assert fisher_combined_pvalue([0.001, 0.001]) < 1e-4
    assert mcnemar_exact(8, 0) == pytest.approx(0.5**8)
    assert mcnemar_exact(0, 8) == pytest.approx(1.0)


def test_two_level_selection_hand_computed_and_null_rate():
    from auditdesk.core.analysis.multiplicity import selective_probe_qvalues

    # Category a: one strong probe among weak ones; b: nothing. Hand computed:
    # a: Simes = min(3*0.001/1, 3*0.5/2, 3*0.9/3) = 0.003, Fisher larger -> family p = 0.006;
    # b: Fisher of (0.3, 0.6) = chi2_4.sf(3.43) = 0.4887 < Simes 0.6 -> family p = 0.977.
    # BH over 2 categories: q_a = 0.012, q_b = 0.977.
    # Inside a (R = 1 of m = 2): BH q of 0.001 is 0.003, times m/R = 0.006.
    out = selective_probe_qvalues(["a", "a", "a", "b", "b"], [0.001, 0.5, 0.9, 0.3, 0.6], 0.05)
    assert out["p_values"]["a"] == pytest.approx(0.006) and out["p_values"]["b"] == pytest.approx(0.97733, abs=1e-5)
    assert out["q_values_by_category"]["a"] == pytest.approx(0.012)
    assert out["selected"] == {"a": True, "b": False}
    assert out["q_values"][0] == pytest.approx(0.012)  # never below its category's q
    assert out["q_values"][1] == 1.0 and out["q_values"][3] == 1.0  # 0.6 within b, times m/R = 2
    # A lone p = 0.01 in one of four categories of null probes is not enough.
    lone = selective_probe_qvalues(["a", "b", "c", "d"], [0.01, 0.4, 0.7, 0.9], 0.05)
    assert not any(lone["selected"].values())
    # Uniform p-values (the null): an audit reports anything in at most ~fdr of cases.
    rng = np.random.default_rng(0)
    cats = [c for c in "abcdef" for _ in range(8)]
    hits = sum(
        any(selective_probe_qvalues(cats, list(rng.random(len(cats))), 0.05)["selected"].values())
        for _ in range(2000)
    )
    assert hits / 2000 <= 0.06
