"""Would more corpus reach the harm scorer's target? Held-out accuracy against the share of training data kept.

Usage: .venv/bin/python benchmarks/harm_features/learning_curve.py [--fractions 0.25 0.5 0.75 1] [--repeats 2]

Same protocol as harm_training.evaluate (leave one phrasing family out, the shipped
logistic regression, threshold 0.8), except that each training set keeps only a random
share of its examples (the held-out family is always scored in full). Prints one line
per share: mean held-out accuracy per harm over the repeats. The corpus is embedded once
(MiniLM, float32), as `harm_training --write` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from auditdesk.core.analysis.harm import DIMENSIONS  # noqa: E402
from auditdesk.core.analysis.harm_training import (  # noqa: E402
    THRESHOLD,
    embed_corpus,
    held_out_probabilities,
    load_corpus,
)


def held_out_accuracy(examples, vectors, keep: np.ndarray) -> dict[str, float]:
    out = {}
    for dim in DIMENSIONS:
        predicted = held_out_probabilities(examples, vectors, dim, keep)
        out[dim] = float(np.mean([(p >= THRESHOLD) == examples[i].harmful for i, p in predicted.items()]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--repeats", type=int, default=2, help="random subsets per share below 1")
    args = parser.parse_args()
    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    examples, _ = load_corpus()
    embedder = SentenceTransformerEmbedder()
    embedder.precision = "fp32"
    vectors = embed_corpus(examples, embedder)
    rng = np.random.default_rng(0)
    for frac in args.fractions:
        runs = [held_out_accuracy(examples, vectors, rng.random(len(examples)) < frac)
                for _ in range(args.repeats if frac < 1 else 1)]
        print(f"{frac:4.2f} " + " ".join(f"{d} {np.mean([r[d] for r in runs]):.3f}" for d in DIMENSIONS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
