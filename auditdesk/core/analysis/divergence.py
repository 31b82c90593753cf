"""Per-probe divergence: are the tuned model's answers distributed differently?

Energy distance over cosine distances of answer embeddings, with a permutation
test (labels shuffled only inside each variant, so a probe's format variants
never masquerade as a model difference). It must never report a p-value smaller
than the permutations can support.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 20000  # enumerate every relabelling when there are at most this many
FIRST_PASS = 1999  # Monte Carlo permutations before any refinement
STOP_EXCEEDANCES = 50  # Besag–Clifford: stop once this many permutations beat the observed value


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances (1 - cosine similarity), clipped to [0, 2]."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    d = 1.0 - x @ x.T
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)


def _energy_terms(d: np.ndarray, a: np.ndarray, b: np.ndarray, na: np.ndarray | int, nb: np.ndarray | int):
    """Energy distance and mean cross distance for (batches of) weight vectors a, b.

    a, b: (P, n) 0/1 indicators or bootstrap counts; na, nb the group sizes. The
    within-group means run over ordered pairs of distinct positions (U-statistic),
    so two samples of one distribution give about 0, not a positive bias.
    """
    ad = a @ d
    cross = np.einsum("pi,pi->p", ad, b) / (na * nb)
    within_a = np.einsum("pi,pi->p", ad, a) / np.maximum(na * (na - 1), 1)
    bd = b @ d
    within_b = np.einsum("pi,pi->p", bd, b) / np.maximum(nb * (nb - 1), 1)
    return 2.0 * cross - within_a - within_b, cross


@dataclass
class DivergenceResult:
    """Outcome of one probe's base-vs-tuned test."""

    divergence: float  # energy distance, pooled over variants (weighted by size)
    effect_size: float  # energy coefficient in [0, 1]: divergence / (2 * mean cross distance)
    p_value: float
    permutations: int
    exceedances: int
    exact: bool
    n_base: int
    n_tuned: int


class _Stratum:
    """One variant's answers: distance matrix and how many are base."""

    def __init__(self, d: np.ndarray, is_base: np.ndarray):
        self.d = d
        self.n = d.shape[0]
        self.is_base = is_base.astype(bool)
        self.nb = int(self.is_base.sum())
        self.nt = self.n - self.nb

    def relabellings(self) -> int:
        return math.comb(self.n, self.nb)

    def stat(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = labels.astype(np.float64)
        return _energy_terms(self.d, a, 1.0 - a, self.nb, self.nt)

    def all_labels(self) -> np.ndarray:
        out = np.zeros((self.relabellings(), self.n), dtype=bool)
        for row, combo in enumerate(itertools.combinations(range(self.n), self.nb)):
            out[row, list(combo)] = True
        return out

    def random_labels(self, rng: np.random.Generator, count: int) -> np.ndarray:
        keys = rng.random((count, self.n))
        ranks = np.argsort(keys, axis=1)
        out = np.zeros((count, self.n), dtype=bool)
        np.put_along_axis(out, ranks[:, : self.nb], True, axis=1)
        return out


class ProbeDivergence:
    """The permutation test of one probe, able to refine its p-value on demand."""

    def __init__(self, strata: list[_Stratum], seed: int):
        self.strata = [s for s in strata if s.nb > 0 and s.nt > 0]
        self.rng = np.random.default_rng(seed)
        self.weights = np.array([s.n for s in self.strata], dtype=np.float64)
        if self.weights.size:
            self.weights /= self.weights.sum()
        self.observed = 0.0
        self.cross = 0.0
        if self.strata:
            obs = [s.stat(s.is_base[None, :]) for s in self.strata]
            self.observed = float(sum(w * e[0] for w, (e, _) in zip(self.weights, obs)))
            self.cross = float(sum(w * c[0] for w, (_, c) in zip(self.weights, obs)))
        self.done = 0
        self.exceed = 0
        self.exact = False
        self.stopped = False
        total = 1
        for s in self.strata:
            total *= s.relabellings()
            if total > EXACT_LIMIT:
                break
        self.total_relabellings = total

    @property
    def testable(self) -> bool:
        return bool(self.strata)

    def _pooled(self, labels: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(labels[0].shape[0])
        for w, s, lab in zip(self.weights, self.strata, labels):
            out += w * s.stat(lab)[0]
        return out

    def run_exact(self) -> None:
        per = [s.all_labels() for s in self.strata]
        stats = [s.stat(lab)[0] for s, lab in zip(self.strata, per)]
        # Sum over the cartesian product of strata without materialising labels.
        pooled = np.zeros(1)
        for w, st in zip(self.weights, stats):
            pooled = (pooled[:, None] + w * st[None, :]).ravel()
        self.done = pooled.size
        self.exceed = int(np.sum(pooled >= self.observed - 1e-12))
        self.exact = True
        self.stopped = True

    def run_more(self, count: int, batch: int = 2000) -> None:
        """Add up to `count` Monte Carlo permutations, stopping early once resolved."""
        remaining = count
        while remaining > 0 and not self.stopped:
            k = min(batch, remaining)
            labels = [s.random_labels(self.rng, k) for s in self.strata]
            stats = self._pooled(labels)
            hits = stats >= self.observed - 1e-12
            if self.exceed + int(hits.sum()) >= STOP_EXCEEDANCES:
                # Count exactly up to the permutation that reached the stop count.
                cum = np.cumsum(hits) + self.exceed
                last = int(np.argmax(cum >= STOP_EXCEEDANCES))
                self.done += last + 1
                self.exceed = STOP_EXCEEDANCES
                self.stopped = True
                return
            self.done += k
            self.exceed += int(hits.sum())
            remaining -= k

    @property
    def p_value(self) -> float:
        if self.exact:
            return self.exceed / self.done
        if self.stopped:  # Besag–Clifford sequential p-value
            return self.exceed / self.done
        return (self.exceed + 1) / (self.done + 1)

    def result(self) -> DivergenceResult:
        effect = 0.0 if self.cross <= 0 else max(0.0, self.observed) / (2.0 * self.cross)
        return DivergenceResult(
            divergence=self.observed,
            effect_size=min(1.0, effect),
            p_value=self.p_value,
            permutations=self.done,
            exceedances=self.exceed,
            exact=self.exact,
            n_base=sum(s.nb for s in self.strata),
            n_tuned=sum(s.nt for s in self.strata),
        )


def build_probe_test(embeddings: np.ndarray, is_base: np.ndarray, variants: list[str], seed: int) -> ProbeDivergence:
    """Prepare the test of one probe from its answers' embeddings, roles and variants."""
    strata = []
    variants_arr = np.asarray(variants)
    for v in sorted(set(variants)):
        idx = np.flatnonzero(variants_arr == v)
        d = cosine_distances(embeddings[idx])
        strata.append(_Stratum(d, np.asarray(is_base)[idx]))
    return ProbeDivergence(strata, seed)


def permutation_pvalue(
    embeddings: np.ndarray,
    is_base: np.ndarray,
    variants: list[str] | None = None,
    *,
    seed: int = 0,
    max_permutations: int = 19999,
) -> DivergenceResult:
    """Energy-distance permutation test of one probe (exact when small enough)."""
    if variants is None:
        variants = ["plain"] * len(is_base)
    test = build_probe_test(embeddings, np.asarray(is_base, dtype=bool), variants, seed)
    if not test.testable:
        raise ValueError("both models need at least one answer in some variant")
    if test.total_relabellings <= EXACT_LIMIT:
        test.run_exact()
    else:
        test.run_more(max_permutations)
    return test.result()


def run_probe_tests(tests: list[ProbeDivergence], *, fdr: float, max_permutations: int, cancel=None, on_step=None) -> None:
    """Run every probe's permutation test, refining only where BH could change.

    The smallest p-value a Monte Carlo test can give is 1/(B+1); BH needs
    roughly fdr*k/m for k discoveries among m probes. So a first pass of
    FIRST_PASS permutations is refined tenfold, up to `max_permutations`, only
    for probes whose p-value is still at the resolution floor and not yet
    discovered: cheap when nothing or nearly everything changed.
    """
    from auditdesk.core.analysis.stats import bh_qvalues

    for i, t in enumerate(tests):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if not t.testable:
            continue
        if t.total_relabellings <= EXACT_LIMIT:
            t.run_exact()
        else:
            t.run_more(FIRST_PASS)
        if on_step:
            on_step(i + 1)
    while True:
        ps = [t.p_value if t.testable else None for t in tests]
        qs = bh_qvalues(ps)
        todo = [
            t
            for t, q in zip(tests, qs)
            if t.testable and not t.stopped and q is not None and q >= fdr and t.exceed <= 3 and t.done < max_permutations
        ]
        if not todo:
            return
        for t in todo:
            if cancel is not None:
                cancel.raise_if_cancelled()
            t.run_more(min(max_permutations, (t.done + 1) * 10 - 1) - t.done)
