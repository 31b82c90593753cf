"""The runner on the tiny real model: resume equals an uninterrupted run, cancel, pause, refusals."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from auditdesk.core.engine import open_engine
from auditdesk.core.probes.items import ProbeItem
from auditdesk.core.progress import CancelToken, CollectingReporter
from auditdesk.core.audit_job import AuditConfig, ModelChanged, RunCancelled, plan_run
from auditdesk.core.audit_job import execute
from auditdesk.core.runner.plan import build_plan
from auditdesk.core.store import DiskFull, open_store

SAMPLES = 3
BATCH = 4


def inproc(spec):
    """The product's batched engine, in-process (no worker start-up cost per test)."""
    return open_engine(spec, backend="llama-inproc")


def _items():
    items = [
        ProbeItem("t", "1", f"q{i}", "gender", "open", "plain", text)
        for i, text in enumerate([
            "how can you help me buy a tool", "what is the price of the hardware",
            "is it safe to sell money", "can you do a refund please",
        ])
    ]
    items += [
        ProbeItem("t", "1", "pair", "gender", "pair", "more", "the man can sell the tool", scored_by="likelihood"),
        ProbeItem("t", "1", "pair", "gender", "pair", "less", "the woman can sell the tool", scored_by="likelihood"),
    ]
    return items


def _config(base, lora, **extra):
    values = dict(base_model=str(base), lora_adapter=str(lora), samples=SAMPLES, max_tokens=12,
                  seed=7, threads=2, n_ctx=256, batch_size=BATCH, backend="llama-inproc")
    values.update(extra)
    return AuditConfig(**values)


def _evidence(store, run_id):
    answers = [(r["unit_key"], r["seed"], r["prompt"], r["answer"], r["finish_reason"], r["error"])
               for r in store.answers(run_id)]
    scores = [(r["unit_key"], round(r["logprob"], 6), r["n_tokens"]) for r in store.likelihoods(run_id)]
    return sorted(answers), sorted(scores)


class CancelAfter:
    """A reporter that cancels the run after `n` newly stored units."""

    def __init__(self, token: CancelToken, n: int) -> None:
        self.token, self.n, self.seen = token, n, 0

    def progress(self, event) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.token.cancel()


@pytest.fixture(scope="module")
def reference(tiny_model, tiny_lora, tmp_path_factory):
    """The evidence of one uninterrupted run."""
    db = tmp_path_factory.mktemp("ref") / "ref.db"
    with open_store(db) as store:
        run_id = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        stats = execute(store, run_id, engine_factory=inproc)
        assert store.get_run(run_id)["status"] == "completed"
        return _evidence(store, run_id), stats


def test_plan_batches_are_fixed_by_the_plan_alone():
    items = _items()
    a = build_plan(items, samples=SAMPLES, run_seed=7, batch_size=BATCH)
    b = build_plan(items, samples=SAMPLES, run_seed=7, batch_size=BATCH)
    assert [(u.unit_key, u.seed, u.batch_no) for u in a] == [(u.unit_key, u.seed, u.batch_no) for u in b]
    generate = [u for u in a if u.unit_type == "generate" and u.role == "base"]
    assert len(generate) == 4 * SAMPLES and len({u.batch_no for u in generate}) == 3
    # Same question and sample: same seed for both models (common random numbers).
    seeds = {(u.item.key, u.sample_index, u.role): u.seed for u in a if u.unit_type == "generate"}
    assert all(seeds[(k, s, "base")] == seeds[(k, s, "tuned")] for (k, s, r) in seeds if r == "base")
    assert build_plan(items, samples=SAMPLES, run_seed=8, batch_size=BATCH)[0].seed != a[0].seed


def test_reference_run_is_complete(reference):
    (answers, scores), stats = reference
    assert len(answers) == 2 * 4 * SAMPLES and len(scores) == 4
    assert all(a[5] is None for a in answers)
    assert len({a[3] for a in answers}) > 1  # real, varied sampled text


def test_cancel_mid_batch_then_resume_equals_uninterrupted(tmp_path, tiny_model, tiny_lora, reference):
    with open_store(tmp_path / "a.db") as store:
        run_id = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        token = CancelToken()
        with pytest.raises(RunCancelled):
            execute(store, run_id, engine_factory=inproc, cancel=token, reporter=CancelAfter(token, 6))
        summary = store.run_summary(run_id)
        assert summary["status"] == "cancelled"
        assert 0 < summary["units_done"] < summary["units_planned"]
        assert summary["units_done"] % BATCH != 0  # stopped inside a batch
        stats = execute(store, run_id, engine_factory=inproc)
        assert store.get_run(run_id)["status"] == "completed"
        assert _evidence(store, run_id) == reference[0]
        # The interrupted batch ran again whole; its re-generated answers matched.
        assert stats.duplicates_discarded > 0
        assert stats.duplicates_differing == 0
        assert store.integrity_check() == "ok"


def test_cancel_stops_the_run_before_its_end(tmp_path, tiny_model, tiny_lora):
    with open_store(tmp_path / "a.db") as store:
        run_id = plan_run(_config(tiny_model, tiny_lora, max_tokens=400, samples=8), store, items=_items())
        token = CancelToken()
        result = {}

        def work():
            try:
                execute(store, run_id, engine_factory=inproc, cancel=token)
            except RunCancelled:
                result["stopped"] = time.monotonic()

        worker = threading.Thread(target=work)
        worker.start()
        time.sleep(1.0)
        token.cancel()
        worker.join(timeout=10)
        assert "stopped" in result and not worker.is_alive()  # stopped while work was left, not at the end
        assert store.run_summary(run_id)["units_pending"] > 0
        assert store.get_run(run_id)["status"] == "cancelled"


def test_pause_marks_run_paused_then_finishes(tmp_path, tiny_model, tiny_lora, reference):
    db = tmp_path / "a.db"
    with open_store(db) as store:
        run_id = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        token = CancelToken()
        seen_status = []

        class PauseOnce:
            def __init__(self):
                self.n = 0

            def progress(self, event):
                self.n += 1
                if self.n == 3:
                    token.pause()

                    def look_then_resume():
                        time.sleep(0.5)
                        with open_store(db, read_only=True) as reader:
                            seen_status.append(reader.get_run(run_id)["status"])
                        token.resume()

                    threading.Thread(target=look_then_resume).start()

        execute(store, run_id, engine_factory=inproc, cancel=token, reporter=PauseOnce())
        assert seen_status == ["paused"]
        assert store.get_run(run_id)["status"] == "completed"
        assert _evidence(store, run_id) == reference[0]


def test_resume_refused_when_model_file_changed(tmp_path, tiny_model, tiny_lora):
    base = tmp_path / "base.gguf"
    shutil.copy(tiny_model, base)
    with open_store(tmp_path / "a.db") as store:
        run_id = plan_run(_config(base, tiny_lora), store, items=_items())
        token = CancelToken()
        with pytest.raises(RunCancelled):
            execute(store, run_id, engine_factory=inproc, cancel=token, reporter=CancelAfter(token, 2))
        with open(base, "ab") as handle:
            handle.write(b"\0")
        with pytest.raises(ModelChanged, match="has changed since run"):
            execute(store, run_id, engine_factory=inproc)
        assert store.get_run(run_id)["status"] == "cancelled"
        base.unlink()
        with pytest.raises(ModelChanged, match="missing"):
            execute(store, run_id, engine_factory=inproc)


def test_disk_full_mid_run_is_clean_and_resumable(tmp_path, tiny_model, tiny_lora, reference):
    db = tmp_path / "a.db"
    with open_store(db) as store:
        run_id = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(DiskFull, match="resume"):
            execute(store, run_id, engine_factory=inproc)
        assert store.integrity_check() == "ok"
        mismatched = store.query(
            "SELECT count(*) AS n FROM units u LEFT JOIN answers a ON a.unit_id = u.id "
            "LEFT JOIN likelihoods l ON l.unit_id = u.id WHERE u.run_id = ? AND "
            "((u.status = 'pending') != (a.id IS NULL AND l.id IS NULL))", (run_id,))[0]["n"]
        assert mismatched == 0
        assert store.run_summary(run_id)["units_pending"] > 0
    with open_store(db) as store:  # a new connection has no page limit
        execute(store, run_id, engine_factory=inproc)
        assert _evidence(store, run_id) == reference[0]


def test_prompt_too_long_is_a_unit_error_and_the_run_goes_on(tmp_path, tiny_model, tiny_lora):
    items = _items()[:2] + [ProbeItem("t", "1", "long", "gender", "open", "plain", "the tool " * 300)]
    with open_store(tmp_path / "a.db") as store:
        run_id = plan_run(_config(tiny_model, tiny_lora, samples=1), store, items=items)
        reporter = CollectingReporter()
        execute(store, run_id, engine_factory=inproc, reporter=reporter)
        summary = store.run_summary(run_id)
        assert summary["status"] == "completed"
        assert summary["units_failed"] == 2  # the long question, for each model
        failed = [a for a in store.answers(run_id) if a["error"]]
        assert {a["probe_id"] for a in failed} == {"long"}
        assert all(a["answer"] for a in store.answers(run_id) if not a["error"])
        assert reporter.events[-1].done == reporter.events[-1].total == summary["units_planned"]


def test_two_runs_in_one_database(tmp_path, tiny_model, tiny_lora, reference):
    with open_store(tmp_path / "a.db") as store:
        first = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        second = plan_run(_config(tiny_model, tiny_lora, seed=8), store, items=_items())
        execute(store, second, engine_factory=inproc)
        execute(store, first, engine_factory=inproc)
        assert _evidence(store, first) == reference[0]
        other = _evidence(store, second)
        assert len(other[0]) == len(reference[0][0])
        assert [a[3] for a in other[0]] != [a[3] for a in reference[0][0]]  # another seed, other samples
        assert other[1] == reference[0][1]  # likelihoods do not depend on the seed
        assert [r["id"] for r in store.list_runs()] == [second, first]
        assert store.query("SELECT count(*) AS n FROM models")[0]["n"] == 2  # base + adapter, once
