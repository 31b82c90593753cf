"""Clusters of pooled answers: which kinds of answer only the tuned model gives.

Both models' answers are pooled, reduced with PCA (at most 50 dimensions),
clustered with Ward agglomerative clustering (deterministic: no random start),
and each cluster's base/tuned counts are tested. It must never call a cluster
new behaviour without a significant test and a clear tuned majority.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from auditdesk.core.analysis.stats import bh_qvalues, clean_number, fisher_exact

NEW_BEHAVIOUR_SHARE = 0.8
NEW_BEHAVIOUR_MIN_TUNED = 3
MAX_CLUSTERS = 12
SILHOUETTE_SAMPLE = 2000
WARD_LIMIT = 3000  # answers clustered by the Ward tree itself; the rest join the nearest centre
_WORD = re.compile(r"[^\W\d_][\w'-]{1,}", re.UNICODE)


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"answer", "question", "i'm", "it's", "don't", "you're"}


def reduce(embeddings: np.ndarray, dims: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(reduced to <= dims, 2-D map coordinates) by PCA (exact and deterministic)."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    k = max(1, min(dims, x.shape[0] - 1, x.shape[1]))
    if x.shape[0] <= x.shape[1]:
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        components = vt[:k].T
    else:
        # Eigenvectors of the d x d scatter matrix: the same axes as the SVD, but
        # one matrix product over the answers instead of an n x d SVD (10k answers:
        # ~0.1 s instead of seconds on a busy 2-core machine).
        vals, vecs = np.linalg.eigh(x.T @ x)
        components = vecs[:, np.argsort(vals, kind="mergesort")[::-1][:k]]
    # Fix the sign of each component so reruns give the same map.
    signs = np.sign(components[np.argmax(np.abs(components), axis=0), np.arange(components.shape[1])])
    signs[signs == 0] = 1
    reduced = x @ (components * signs)
    coords = np.zeros((x.shape[0], 2))
    m = min(2, reduced.shape[1])
    coords[:, :m] = reduced[:, :m]
    return reduced, coords


def choose_labels(reduced: np.ndarray, seed: int = 0) -> np.ndarray:
    """Ward tree cut at the k (2..MAX_CLUSTERS) with the best silhouette.

    Ward needs n² memory and time, so above WARD_LIMIT answers the tree is built
    on a seeded random subsample and every answer joins the nearest cluster
    centre (in the reduced space); the result depends only on the data and seed.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score

    n = reduced.shape[0]
    if n < 4:
        return np.zeros(n, dtype=int)
    rng = np.random.default_rng(seed)
    fit = np.arange(n) if n <= WARD_LIMIT else np.sort(rng.choice(n, size=WARD_LIMIT, replace=False))
    x = reduced[fit]
    tree = linkage(x, method="ward")
    m = len(fit)
    sample = np.sort(rng.choice(m, size=min(m, SILHOUETTE_SAMPLE), replace=False))
    best, best_labels = -2.0, np.zeros(m, dtype=int)
    for k in range(2, min(MAX_CLUSTERS, m - 1) + 1):
        labels = fcluster(tree, k, criterion="maxclust") - 1
        if len(set(labels[sample])) < 2:
            continue
        score = silhouette_score(x[sample], labels[sample])
        if score > best + 1e-9:
            best, best_labels = score, labels
    if m == n:
        return best_labels
    k = int(best_labels.max()) + 1
    centres = np.stack([x[best_labels == c].mean(axis=0) for c in range(k)])
    # Squared distances without an n x k x d temporary.
    d2 = (reduced**2).sum(axis=1)[:, None] - 2.0 * reduced @ centres.T + (centres**2).sum(axis=1)[None, :]
    labels = np.argmin(d2, axis=1)
    labels[fit] = best_labels  # the subsample keeps its tree labels
    return labels


def ctfidf_keywords(texts: list[str], labels: np.ndarray, top: int = 8) -> dict[int, list[str]]:
    """Class-based TF-IDF: words frequent in a cluster and rare across clusters."""
    stop = _stop_words()
    counts: dict[int, Counter] = {}
    for t, lab in zip(texts, labels):
        words = [w.lower() for w in _WORD.findall(t)]
        counts.setdefault(int(lab), Counter()).update(w for w in words if w not in stop)
    total = Counter()
    for c in counts.values():
        total.update(c)
    avg_words = np.mean([sum(c.values()) for c in counts.values()]) if counts else 0.0
    out = {}
    for lab, c in counts.items():
        size = sum(c.values()) or 1
        scored = [(w, (n / size) * np.log(1 + avg_words / total[w])) for w, n in c.items()]
        scored.sort(key=lambda x: (-x[1], x[0]))
        out[lab] = [w for w, _ in scored[:top]]
    return out


def cluster_answers(
    embeddings: np.ndarray,
    roles: list[str],
    texts: list[str],
    keys: list[str],
    probe_ids: list[str],
    *,
    scope: str,
    fdr: float = 0.05,
    seed: int = 0,
    include_points: bool = True,
) -> dict:
    """One clustering (for a category or all answers) as a findings-file object."""
    n = len(texts)
    result = {
        "scope": scope,
        "method": f"PCA (<= 50 dims) + Ward agglomerative, k in 2..{MAX_CLUSTERS} by silhouette"
        + (f" (tree on a seeded sample of {WARD_LIMIT}, the rest by nearest centre)" if n > WARD_LIMIT else ""),
        "n_answers": n,
        "points": [],
        "clusters": [],
    }
    if n < 4:
        return result
    reduced, coords = reduce(embeddings)
    labels = choose_labels(reduced, seed)
    is_tuned = np.array([r == "tuned" for r in roles])
    tot_t = int(is_tuned.sum())
    tot_b = n - tot_t
    keywords = ctfidf_keywords(texts, labels)
    clusters = []
    for lab in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == lab)
        nt = int(is_tuned[members].sum())
        nb = len(members) - nt
        p = fisher_exact(nb, tot_b, nt, tot_t, "two-sided") if tot_b and tot_t else None
        centre = reduced[members].mean(axis=0)
        order = members[np.argsort(np.linalg.norm(reduced[members] - centre, axis=1), kind="mergesort")]
        clusters.append(
            {
                "id": int(lab),
                "size": int(len(members)),
                "n_base": nb,
                "n_tuned": nt,
                "share_tuned": clean_number(nt / len(members)),
                "p_value": clean_number(p),
                "keywords": keywords.get(int(lab), []),
                "examples": [
                    {"role": roles[i], "probe_id": probe_ids[i], "text": texts[i][:600]} for i in order[:3]
                ],
            }
        )
    qs = bh_qvalues([c["p_value"] for c in clusters])
    for c, q in zip(clusters, qs):
        c["q_value"] = clean_number(q)
        c["new_behaviour"] = bool(
            q is not None
            and q < fdr
            and c["share_tuned"] >= NEW_BEHAVIOUR_SHARE
            and c["n_tuned"] >= NEW_BEHAVIOUR_MIN_TUNED
        )
    clusters.sort(key=lambda c: (not c["new_behaviour"], -(c["share_tuned"] or 0), c["id"]))
    result["clusters"] = clusters
    if include_points:
        result["points"] = [
            {
                "key": keys[i],
                "role": roles[i],
                "probe_id": probe_ids[i],
                "x": round(float(coords[i, 0]), 4),
                "y": round(float(coords[i, 1]), 4),
                "cluster": int(labels[i]),
            }
            for i in range(n)
        ]
    return result
