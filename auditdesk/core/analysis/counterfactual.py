"""Counterfactual gaps: does the tuned model treat groups more differently than the base?

Within each model, the gap is the energy distance between the answers given for
different slot groups (e.g. "a young woman" vs "a young man"); the finding is
the change of that gap from base to tuned. It must never call a gap change real
without a test whose null holds when base and tuned are the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from auditdesk.core.analysis.divergence import _energy_terms, cosine_distances


@dataclass
class GapResult:
    gap_base: float
    gap_tuned: float
    coef_base: float  # gap as energy coefficient (0-1)
    coef_tuned: float
    gap_change: float
    ci_low: float
    ci_high: float
    p_value: float
    permutations: int


class CounterfactualProbe:
    """One counterfactual probe's answers: distances, model role and slot group of each."""

    def __init__(self, embeddings: np.ndarray, is_base: np.ndarray, groups: list[str]):
        self.d = cosine_distances(embeddings)
        self.is_base = np.asarray(is_base, dtype=bool)
        self.groups = sorted(set(groups))
        garr = np.asarray(groups)
        self.group_idx = {g: np.flatnonzero(garr == g) for g in self.groups}
        self.n = self.d.shape[0]

    @property
    def testable(self) -> bool:
        if len(self.groups) < 2:
            return False
        for idx in self.group_idx.values():
            nb = int(self.is_base[idx].sum())
            if nb < 1 or nb == len(idx):
                return False
        return True

    def _gaps(self, base_w: dict[str, np.ndarray], tuned_w: dict[str, np.ndarray], sizes: dict[tuple[str, str], int]):
        """(gap, coefficient) for each model from per-group weight matrices (P x n)."""
        out = []
        for role, w in (("base", base_w), ("tuned", tuned_w)):
            gaps = []
            coefs = []
            for g, h in combinations(self.groups, 2):
                e, cross = _energy_terms(self.d, w[g], w[h], sizes[(role, g)], sizes[(role, h)])
                gaps.append(e)
                coefs.append(np.where(cross > 0, np.maximum(e, 0) / (2 * np.where(cross > 0, cross, 1)), 0.0))
            out.append((np.mean(gaps, axis=0), np.mean(coefs, axis=0)))
        return out

    def _sizes(self) -> dict[tuple[str, str], int]:
        sizes = {}
        for g, idx in self.group_idx.items():
            nb = int(self.is_base[idx].sum())
            sizes[("base", g)] = nb
            sizes[("tuned", g)] = len(idx) - nb
        return sizes

    def observed(self):
        bw, tw = {}, {}
        for g, idx in self.group_idx.items():
            b = np.zeros((1, self.n))
            t = np.zeros((1, self.n))
            b[0, idx[self.is_base[idx]]] = 1
            t[0, idx[~self.is_base[idx]]] = 1
            bw[g], tw[g] = b, t
        (gb, cb), (gt, ct) = self._gaps(bw, tw, self._sizes())
        return float(gb[0]), float(gt[0]), float(cb[0]), float(ct[0])

    def permuted_changes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Gap change under `count` relabellings of model roles inside each slot group."""
        bw, tw = {}, {}
        sizes = self._sizes()
        for g, idx in self.group_idx.items():
            nb = sizes[("base", g)]
            ranks = np.argsort(rng.random((count, len(idx))), axis=1)
            b = np.zeros((count, self.n))
            rows = np.repeat(np.arange(count), nb)
            b[rows, idx[ranks[:, :nb]].ravel()] = 1
            t = np.zeros((count, self.n))
            t[:, idx] = 1 - b[:, idx]
            bw[g], tw[g] = b, t
        (gb, _), (gt, _) = self._gaps(bw, tw, sizes)
        return gt - gb

    def bootstrap_changes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Gap change when each (model, group) set of answers is resampled with replacement."""
        bw, tw = {}, {}
        sizes = self._sizes()
        for g, idx in self.group_idx.items():
            for role, store, mask in (("base", bw, self.is_base[idx]), ("tuned", tw, ~self.is_base[idx])):
                members = idx[mask]
                w = np.zeros((count, self.n))
                picks = rng.integers(0, len(members), size=(count, len(members)))
                for col in range(len(members)):
                    np.add.at(w, (np.arange(count), members[picks[:, col]]), 1)
                store[g] = w
        (gb, _), (gt, _) = self._gaps(bw, tw, sizes)
        return gt - gb


def gap_change_test(probe: CounterfactualProbe, *, seed: int = 0, permutations: int = 1999, bootstrap: int = 1000) -> GapResult:
    """Gap change of one probe with a one-sided permutation p-value and a bootstrap interval."""
    rng = np.random.default_rng(seed)
    gb, gt, cb, ct = probe.observed()
    change = gt - gb
    perm = probe.permuted_changes(rng, permutations)
    p = (1 + int(np.sum(perm >= change - 1e-12))) / (permutations + 1)
    boot = probe.bootstrap_changes(rng, bootstrap)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return GapResult(gb, gt, cb, ct, change, float(lo), float(hi), p, permutations)


def category_gap_pvalue(probes: list[CounterfactualProbe], *, seed: int = 0, permutations: int = 1999) -> tuple[float, float]:
    """Mean gap change over a category's probes and its one-sided permutation p-value.

    Each probe is relabelled independently with the same permutation count and
    the changes are averaged per permutation, so the test keeps its exact null
    when base and tuned are one model, and gains power from consistent small shifts.
    """
    rng = np.random.default_rng(seed)
    observed = []
    perms = []
    for pr in probes:
        gb, gt, _, _ = pr.observed()
        observed.append(gt - gb)
        perms.append(pr.permuted_changes(rng, permutations))
    obs = float(np.mean(observed))
    dist = np.mean(perms, axis=0)
    p = (1 + int(np.sum(dist >= obs - 1e-12))) / (permutations + 1)
    return obs, p
