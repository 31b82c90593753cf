"""The validity zoo's recorded verdicts still follow from its stored answers (no model, no training).

benchmarks/validity/run_zoo.py audited each model organism against the 270M base
and kept the answers; this re-analyses them with today's analysis and checks
the verdict recorded in docs/validity.md is still the one it produces.
"""

from __future__ import annotations

import json

import pytest
from zoo_recordings import ZOO, MemoryCache, answers_and_items, parts_of, recorded, rows

from auditdesk.core.analysis import analyse
from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

# Every recorded verdict: one zoo database's folder (its own base answers), or several folders
# analysed together (benchmarks/validity/combine.py, the zoo run in parts).
RECORDED = recorded()


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder(cache=MemoryCache())


def test_the_zoo_has_recorded_organisms():
    assert len(RECORDED) >= 1, "run benchmarks/validity/run_zoo.py to record the zoo"


@pytest.mark.slow
@pytest.mark.parametrize("folder,organism", RECORDED)
def test_recorded_verdict_is_reproduced_from_stored_answers(folder, organism, embedder):
    record = json.loads((ZOO / folder / f"{organism}.json").read_text())
    answers, probe_items = answers_and_items(parts_of(folder, record), organism)
    findings = analyse(answers, [], probe_items, embedder=embedder, seed=record["settings"]["seed"], cluster=False)
    got = {c["category"]: c for c in findings["categories"]}
    concerning = {c["category"] for c in findings["categories"] if c["concern"]}
    for cat in concerning ^ set(record["got"]["concerning"]):
        # float32 and bfloat16 embeddings (CPUs differ) can move one answer across a harm threshold; a
        # category whose harm test is significant but whose rise sits on the 10-point concern rule may
        # then fall either side of it. Nothing else may differ.
        assert got[cat]["concern_q_value"] < findings["settings"]["fdr"], (cat, "differs, and not at the edge")
        assert abs(got[cat]["concern_score"] - findings["settings"]["min_concern_effect"]) <= 0.01, (
            cat, got[cat]["concern_score"], "differs, and not at the edge")
    at_rank = {c["rank"]: c for c in findings["categories"]}
    for cat in concerning & set(record["got"]["concerning"]):
        recorded_rank = record["got"]["categories"][cat]["rank"]
        if got[cat]["rank"] != recorded_rank:
            # Concerning categories rank by concern score; float32 and bfloat16 embeddings (CPUs differ) can
            # move one answer across a threshold, so a near-tie may order either way, and nothing more.
            assert abs(got[cat]["concern_score"] - at_rank[recorded_rank]["concern_score"]) <= 0.01, (cat, recorded_rank)


def test_reviewed_extra_concerns_quote_stored_answers_of_that_category():
    """An extra "concerning" passes only on quotes a person took from that category's tuned answers."""
    import yaml

    files = sorted(ZOO.glob("*/reviews.yaml"))
    assert files
    for path in files:
        _check_reviews(path, yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _check_reviews(path, reviews):
    for organism, categories in reviews.items():
        record = json.loads((path.parent / f"{organism}.json").read_text())
        tuned = [r for part in parts_of(path.parent.name, record) for r in rows(part / f"{organism}.tuned.jsonl.gz")]
        for category, review in categories.items():
            assert category in record["got"]["concerning"], (organism, category)
            assert category not in (record["expected"].get("concerning") or []), (organism, category)
            texts = [r["text"] for r in tuned if r["category"] == category]
            assert len(review["quotes"]) >= 3
            for quote in review["quotes"]:
                assert any(quote in t for t in texts), (organism, category, quote)


@pytest.mark.slow
def test_rederive_rewrites_a_stale_record_and_check_reports_it(tmp_path):
    """benchmarks/validity/rederive.py: the one command that refreshes records after the analysis changes."""
    import shutil
    import sys

    sys.path.insert(0, str(ZOO.parent))
    from rederive import main as rederive

    folder = tmp_path / "independent"
    folder.mkdir()
    for name in ("base.jsonl.gz", "items.jsonl.gz", "hostile-persona.tuned.jsonl.gz", "hostile-persona.json"):
        shutil.copy(ZOO / "independent" / name, folder / name)
    path = folder / "hostile-persona.json"
    record = json.loads(path.read_text())
    assert record["got"]["concerning"] and not record.get("parts")
    assert rederive(["independent:hostile-persona", "--check", "--root", str(tmp_path)]) == 0
    stale = {**record, "got": {**record["got"], "concerning": []}}
    path.write_text(json.dumps(stale))
    assert rederive(["independent:hostile-persona", "--check", "--root", str(tmp_path)]) == 1
    assert json.loads(path.read_text()) == stale  # --check writes nothing
    assert rederive(["independent", "--root", str(tmp_path)]) == 0
    got = json.loads(path.read_text())["got"]
    assert got["concerning"] == record["got"]["concerning"] and "close_calls" in got
