"""Null calibration: a model audited against itself must not be reported as changed.

The fast tiny-model check lives in test_analysis.py; the thorough versions here
(many seed pairs on the tiny model, the real runner on the 270M model) are slow.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from auditdesk.core.analysis import analyse
from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

from test_analysis import NULL_PROMPTS, null_items, tiny_null_answers


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder()


def _anything_reported(findings) -> bool:
    return findings["summary"]["flagged_probes"] > 0 or any(
        c["changed"] or c["concern"] for c in findings["categories"]
    )


@pytest.mark.slow
def test_null_calibration_over_many_seed_pairs_on_the_tiny_model(tiny_model, embedder):
    """Over 20 seed pairs: never a concern, and "changed" at most at the false-discovery rate."""
    pairs = [(2 * k + 1, 2 * k + 2) for k in range(20)]
    all_answers = tiny_null_answers(tiny_model, pairs, samples=6, max_tokens=16)
    items = null_items()
    reported = []
    for pair in pairs:
        f = analyse(all_answers[pair], [], items, embedder=embedder, seed=pair[0], cluster=False)
        assert not any(c["concern"] for c in f["categories"]), pair
        reported.append(_anything_reported(f))
    # With fdr = 0.05 a family of tests wrongly reports something in at most about
    # 5% of audits; 3 of 20 would already be twice that.
    assert sum(reported) <= 2, reported


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two full runs: about 25 minutes on a busy 2-core machine
def test_null_calibration_on_the_270m_model(embedder, tmp_path):
    """The 270M model against itself through the real runner: two runs, different seeds.

    Within one run base and tuned share their sampling seeds (by design: common
    random numbers), so the same model gives the same answers; the null
    comparison is run A's base answers against run B's, relabelled as tuned.
    """
    from auditdesk.core.models.defaults import default_base_model
    from auditdesk.core.audit_job import AuditConfig, analyse_run, analysis_inputs, run_job
    from auditdesk.core.store.db import open_store

    base = str(default_base_model())
    db = tmp_path / "null.db"
    runs = []
    t0 = time.monotonic()
    for seed in (11, 12):
        cfg = AuditConfig(base_model=base, tuned_model=base, packs=["quick"], samples=5, max_tokens=32,
                          seed=seed, threads=2, label=f"null seed {seed}")
        with open_store(db) as store:
            runs.append(run_job(store, config=cfg, analyse=False).run_id)
    t_gen = time.monotonic() - t0
    with open_store(db) as store:
        # Same seeds, same model: the pipeline must see no difference at all.
        same = analyse_run(store, runs[0])
        assert not _anything_reported(same)
        answers_a, likes_a, items = analysis_inputs(store, runs[0])
        answers_b, likes_b, _ = analysis_inputs(store, runs[1])
    base_a = [a for a in answers_a if a.role == "base"]
    base_b = [dataclasses.replace(a, role="tuned") for a in answers_b if a.role == "base"]
    likes = [r for r in likes_a if r.role == "base"] + [
        dataclasses.replace(r, role="tuned") for r in likes_b if r.role == "base"
    ]
    t1 = time.monotonic()
    f = analyse(base_a + base_b, likes, items, embedder=embedder, seed=7)
    t_an = time.monotonic() - t1
    probes = [p for p in f["probes"] if p["p_value"] is not None]
    print(
        f"\n270M null: {len(base_a)}+{len(base_b)} answers, generation {t_gen:.0f} s, analysis {t_an:.0f} s; "
        f"probes {len(probes)}, min p {min(p['p_value'] for p in probes):.4f}, "
        f"min q {min(p['q_value'] for p in probes):.3f}, "
        f"max effect {max(p['effect_size'] for p in probes):.4f}, "
        f"mean effect {sum(p['effect_size'] for p in probes) / len(probes):.4f}"
    )
    for c in f["categories"]:
        print(f"  {c['category']}: changed={c['changed']} concern={c['concern']} change_score={c['change_score']} "
              f"change_q={c['change_q_value']} concern_q={c['concern_q_value']} concern_score={c['concern_score']}")
    assert f["summary"]["flagged_probes"] == 0
    assert not any(c["changed"] or c["concern"] for c in f["categories"])
