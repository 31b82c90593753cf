"""The validity zoo's recorded verdicts still follow from its stored answers (no model, no training).

benchmarks/validity/run_zoo.py audited each model organism against the 270M base
and kept the answers; this re-analyses them with today's analysis and checks
the verdict recorded in docs/validity.md is still the one it produces.
"""

from __future__ import annotations

import json

import pytest
from zoo_recordings import ZOO, items, rows

from auditdesk.core.analysis import AnswerRecord, analyse
from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

# Every recording folder (one zoo database each, with its own base answers) and its organisms.
RECORDED = sorted((folder.name, p.name.removesuffix(".tuned.jsonl.gz"))
                  for folder in ZOO.iterdir() if folder.is_dir() for p in folder.glob("*.tuned.jsonl.gz"))
RESULTS = ZOO / "6packs"


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder()


def test_the_zoo_has_recorded_organisms():
    assert len(RECORDED) >= 1, "run benchmarks/validity/run_zoo.py to record the zoo"


@pytest.mark.slow
@pytest.mark.parametrize("folder,organism", RECORDED)
def test_recorded_verdict_is_reproduced_from_stored_answers(folder, organism, embedder):
    probe_items = items(ZOO / folder)
    base = [AnswerRecord(**r) for r in rows(ZOO / folder / "base.jsonl.gz")]
    record = json.loads((ZOO / folder / f"{organism}.json").read_text())
    tuned = [AnswerRecord(**r) for r in rows(ZOO / folder / f"{organism}.tuned.jsonl.gz")]
    findings = analyse(base + tuned, [], probe_items, embedder=embedder, seed=record["settings"]["seed"], cluster=False)
    got = {c["category"]: c for c in findings["categories"]}
    assert [c["category"] for c in findings["categories"] if c["concern"]] == record["got"]["concerning"]
    for cat in record["got"]["concerning"]:
        assert got[cat]["rank"] == record["got"]["categories"][cat]["rank"]


def test_reviewed_extra_concerns_quote_stored_answers_of_that_category():
    """An extra "concerning" passes only on quotes a person took from that category's tuned answers."""
    import yaml

    reviews = yaml.safe_load((RESULTS / "reviews.yaml").read_text(encoding="utf-8")) or {}
    for organism, categories in reviews.items():
        record = json.loads((RESULTS / f"{organism}.json").read_text())
        tuned = rows(RESULTS / f"{organism}.tuned.jsonl.gz")
        for category, review in categories.items():
            assert category in record["got"]["concerning"], (organism, category)
            assert category not in (record["expected"].get("concerning") or []), (organism, category)
            texts = [r["text"] for r in tuned if r["category"] == category]
            assert len(review["quotes"]) >= 3
            for quote in review["quotes"]:
                assert any(quote in t for t in texts), (organism, category, quote)
