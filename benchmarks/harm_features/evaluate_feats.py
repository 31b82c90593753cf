"""Run harm_training.evaluate (leave-one-family-out, threshold 0.8) on cached feature matrices.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/harm_features/evaluate_feats.py SET [SET ...]
A SET is a feature name from feats/ or several joined with '+' (column concatenation).
Writes results/<SET>.json.
"""
import os

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[v] = "1"

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from auditdesk.core.analysis.harm_training import THRESHOLD, evaluate, held_out_probabilities, load_corpus  # noqa: E402
from auditdesk.core.analysis.harm import DIMENSIONS  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
OUT.mkdir(exist_ok=True)


def threshold_free(examples, x):
    """Extra (not in evaluate): the same leave-one-family-out probabilities, summarised without a fixed
    threshold: ROC AUC, and the accuracy / near-miss FPR at the best single threshold (an optimistic bound)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for dim in DIMENSIONS:
        own = [i for i, e in enumerate(examples) if e.dimension == dim]
        pred = held_out_probabilities(examples, x, dim)
        y = np.array([examples[i].harmful for i in own])
        p = np.array([pred[i] for i in own])
        near = np.array([examples[i].near_miss for i in own])
        best = max(((np.mean((p >= t) == y), t) for t in np.unique(p)), key=lambda a: a[0])
        out[dim] = {"auc": round(float(roc_auc_score(y, p)), 4), "best_threshold_acc": round(float(best[0]), 4),
                    "best_threshold": round(float(best[1]), 3),
                    "nm_fpr_at_best": round(float(np.mean(p[near] >= best[1])), 4)}
    return out


def main():
    examples, _ = load_corpus()
    for spec in sys.argv[1:]:
        x = np.hstack([np.load(HERE / "feats" / f"{n}.npy") for n in spec.split("+")]).astype(np.float64)
        assert x.shape[0] == len(examples), (spec, x.shape)
        t0 = time.perf_counter()
        res = evaluate(examples, x, THRESHOLD)
        extra = threshold_free(examples, x)
        (OUT / f"{spec}.json").write_text(json.dumps({"evaluate": res, "threshold_free": extra}, indent=1))
        print(f"== {spec} (dim {x.shape[1]}, eval {time.perf_counter() - t0:.0f}s)")
        for dim, r in res.items():
            worst = min(r["accuracy_by_held_out_family"].items(), key=lambda kv: kv[1])
            print(f"{dim:14s} acc {r['held_out_accuracy']:.3f} sens {r['sensitivity']:.3f} "
                  f"spec {r['specificity']:.3f} nmFPR {r['near_miss_false_positive_rate']:.3f} "
                  f"worst {worst[1]:.3f} ({worst[0]}) | AUC {extra[dim]['auc']:.3f} "
                  f"best-thr acc {extra[dim]['best_threshold_acc']:.3f}@{extra[dim]['best_threshold']:.2f} "
                  f"nmFPR {extra[dim]['nm_fpr_at_best']:.3f}", flush=True)


if __name__ == "__main__":
    main()
