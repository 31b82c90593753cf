"""Train and evaluate the harm scorer from the labelled corpus in `resources/harm/corpus/`.

`python -m auditdesk.core.analysis.harm_training --write` embeds the corpus,
evaluates with whole phrasing families held out, fits the final models on
everything and writes `resources/harm/scorer.json`. Deterministic: the same
corpus and embedding model give the same coefficients. Never run at audit time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auditdesk.core.analysis.harm import BETWEEN_GROUPS_ONLY, DIMENSIONS, HarmScorer, default_scorer_path
from auditdesk.core.errors import AuditDeskError

SCORER_VERSION = "3"
THRESHOLD = 0.8
REGULARISATION_C = 32.0


@dataclass(frozen=True)
class Example:
    dimension: str
    text: str
    harmful: bool
    family: str
    near_miss: bool


def corpus_folder() -> Path:
    from auditdesk.core.paths import resource_path

    return resource_path("harm") / "corpus"


def load_corpus(folder: str | Path | None = None) -> tuple[list[Example], str]:
    """Every labelled example and the SHA-256 over the corpus files (sorted by name)."""
    import yaml

    folder = Path(folder) if folder is not None else corpus_folder()
    digest = hashlib.sha256()
    examples: list[Example] = []
    for path in sorted(folder.glob("*.yaml")):
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw)
        data = yaml.safe_load(raw)
        dim = data.get("dimension")
        if dim not in DIMENSIONS:
            raise AuditDeskError(f"{path.name}: unknown harm dimension '{dim}'.")
        for n, ex in enumerate(data.get("examples") or []):
            if ex.get("label") not in ("harmful", "benign") or not str(ex.get("text", "")).strip():
                raise AuditDeskError(f"{path.name}: example {n + 1} needs a text and a label (harmful or benign).")
            examples.append(Example(dim, str(ex["text"]).strip(), ex["label"] == "harmful", str(ex.get("family", "")),
                                    bool(ex.get("near_miss", False))))
    if not examples:
        raise AuditDeskError(f"No harm corpus was found in {folder}.")
    return examples, digest.hexdigest()


def _training_set(examples: list[Example], dim: str, exclude_family: str | None = None):
    """Positives: the dimension's harmful examples. Negatives: every benign example of every dimension.

    A dimension read only between groups lends its benign examples to itself alone, so adding
    it (unfavourable, scorer 2) left every other harm's model as it was.
    """
    rows = [i for i, e in enumerate(examples)
            if (e.dimension == dim and e.harmful)
            or (not e.harmful and (e.dimension == dim or e.dimension not in BETWEEN_GROUPS_ONLY))]
    if exclude_family is not None:
        rows = [i for i in rows if examples[i].family != exclude_family]
    y = np.array([examples[i].harmful for i in rows], dtype=int)
    return rows, y


def _fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION_C, class_weight="balanced", max_iter=5000, solver="lbfgs")
    model.fit(x, y)
    return model


def held_out_probabilities(examples: list[Example], vectors: np.ndarray, dim: str,
                           keep: np.ndarray | None = None) -> dict[int, float]:
    """The probability of each of the dimension's examples from a model that never saw its phrasing family.

    `keep` (a boolean per example) thins the training sets only; every held-out example is scored.
    """
    own = [i for i, e in enumerate(examples) if e.dimension == dim]
    predicted = {}
    for fam in sorted({examples[i].family for i in own}):
        rows, y = _training_set(examples, dim, exclude_family=fam)
        if keep is not None:
            kept = [k for k, r in enumerate(rows) if keep[r]]
            rows, y = [rows[k] for k in kept], y[kept]
        model = _fit(vectors[rows], y)
        test = [i for i in own if examples[i].family == fam]
        predicted.update(zip(test, model.predict_proba(vectors[test])[:, 1]))
    return predicted


def evaluate(examples: list[Example], vectors: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Leave-one-phrasing-family-out figures per dimension: every example is scored by a model that never saw its family."""
    out = {}
    for dim in DIMENSIONS:
        own = [i for i, e in enumerate(examples) if e.dimension == dim]
        if not own:
            continue
        families = sorted({examples[i].family for i in own})
        predicted = held_out_probabilities(examples, vectors, dim)
        correct = [(predicted[i] >= threshold) == examples[i].harmful for i in own]
        per_family = {}
        for fam in families:
            idx = [i for i in own if examples[i].family == fam]
            per_family[fam] = round(float(np.mean([(predicted[i] >= threshold) == examples[i].harmful for i in idx])), 4)
        harmful = [i for i in own if examples[i].harmful]
        benign = [i for i in own if not examples[i].harmful]
        near = [i for i in own if examples[i].near_miss]
        out[dim] = {
            "examples": len(own),
            "harmful": len(harmful),
            "benign": len(benign),
            "near_misses": len(near),
            "held_out_accuracy": round(float(np.mean(correct)), 4),
            "sensitivity": round(float(np.mean([predicted[i] >= threshold for i in harmful])), 4) if harmful else None,
            "specificity": round(float(np.mean([predicted[i] < threshold for i in benign])), 4) if benign else None,
            "near_miss_false_positive_rate": (
                round(float(np.mean([predicted[i] >= threshold for i in near])), 4) if near else None
            ),
            "accuracy_by_held_out_family": per_family,
        }
    return out


def train(examples: list[Example], vectors: np.ndarray, *, corpus_sha256: str, embedding_model: str,
          evaluation: dict | None = None) -> HarmScorer:
    """Fit each dimension's model on the whole corpus."""
    dims = tuple(d for d in DIMENSIONS if any(e.dimension == d for e in examples))
    weights, bias = [], []
    for dim in dims:
        rows, y = _training_set(examples, dim)
        model = _fit(vectors[rows], y)
        weights.append(model.coef_[0])
        bias.append(model.intercept_[0])
    return HarmScorer(
        version=SCORER_VERSION,
        embedding_model=embedding_model,
        dimensions=dims,
        weights=np.array(weights).T,
        bias=np.array(bias),
        thresholds=np.full(len(dims), THRESHOLD),
        corpus_sha256=corpus_sha256,
        evaluation={
            "method": "leave one phrasing family out; logistic regression on sentence embeddings, "
            f"balanced classes, C={REGULARISATION_C}, threshold {THRESHOLD}",
            "by_dimension": evaluation or {},
        },
    )


def embed_corpus(examples: list[Example], embedder) -> np.ndarray:
    return embedder.embed([e.text for e in examples])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write resources/harm/scorer.json")
    parser.add_argument("--out", type=Path, default=None, help="write the scorer here instead")
    args = parser.parse_args(argv)

    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    examples, sha = load_corpus()
    embedder = SentenceTransformerEmbedder()
    # The scorer is trained on float32 vectors whatever the CPU: bfloat16 ones differ by ~1e-4.
    embedder.precision = "fp32"
    vectors = embed_corpus(examples, embedder)
    evaluation = evaluate(examples, vectors)
    for dim, row in evaluation.items():
        print(f"{dim:14s} n={row['examples']:4d} held-out acc {row['held_out_accuracy']:.3f} "
              f"sens {row['sensitivity']:.3f} spec {row['specificity']:.3f} "
              f"near-miss FPR {row['near_miss_false_positive_rate']} worst family "
              f"{min(row['accuracy_by_held_out_family'].values()):.3f}")
    model_id = embedder.model_id.split("@")[0]
    scorer = train(examples, vectors, corpus_sha256=sha, embedding_model=model_id, evaluation=evaluation)
    if args.write or args.out:
        out = args.out or default_scorer_path()
        out.write_text(json.dumps(scorer.to_dict(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
