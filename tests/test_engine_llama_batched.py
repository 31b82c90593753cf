"""The in-process batched generator on the tiny real GGUF: seeds, stops, limits, errors, scoring."""

from __future__ import annotations

import math

import pytest

from auditdesk.core.engine import GenerationRequest, ModelSpec, SamplingParams, open_engine

PROMPT = "Question: where can I buy a hammer?\nAnswer:"


@pytest.fixture(scope="module")
def engine(tiny_model):
    eng = open_engine(ModelSpec(path=str(tiny_model), n_ctx=1024, n_threads=2, label="base"), backend="llama-inproc")
    yield eng
    eng.close()


def _answers(engine, requests, params):
    return {a.key: a for a in engine.generate(requests, params)}


def test_batched_answers_are_reproducible_by_seed(engine):
    requests = [GenerationRequest(f"a{i}", PROMPT, seed=100 + i) for i in range(6)]
    requests += [GenerationRequest(f"b{i}", "Question: is the shop open?\nAnswer:", seed=i) for i in range(5)]
    params = SamplingParams(max_tokens=24, stop=())
    first = _answers(engine, requests, params)
    second = _answers(engine, requests, params)
    assert set(first) == {r.key for r in requests}
    assert {k: a.text for k, a in first.items()} == {k: a.text for k, a in second.items()}
    assert all(a.completion_tokens > 0 for a in first.values())


def test_different_seeds_give_different_answers(engine):
    requests = [GenerationRequest(f"s{i}", PROMPT, seed=i) for i in range(8)]
    answers = _answers(engine, requests, SamplingParams(max_tokens=24, stop=()))
    assert len({a.text for a in answers.values()}) >= 6


def test_greedy_ignores_the_seed(engine):
    requests = [GenerationRequest(f"g{i}", PROMPT, seed=i) for i in range(3)]
    answers = _answers(engine, requests, SamplingParams(temperature=0.0, max_tokens=16, stop=()))
    assert len({a.text for a in answers.values()}) == 1


def test_max_tokens_ends_with_length(engine):
    answers = _answers(engine, [GenerationRequest("x", PROMPT, seed=3)], SamplingParams(max_tokens=7, stop=()))
    assert answers["x"].finish_reason == "length"
    assert answers["x"].completion_tokens == 7


def test_stop_string_cuts_the_answer_where_it_first_appears(engine):
    request = [GenerationRequest("x", PROMPT, seed=11)]
    full = _answers(engine, request, SamplingParams(max_tokens=40, stop=()))["x"].text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    cut = _answers(engine, request, SamplingParams(max_tokens=40, stop=(stop,)))["x"]
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index(stop)]


def test_prompt_too_long_fails_only_its_own_answers(tiny_model):
    eng = open_engine(ModelSpec(path=str(tiny_model), n_ctx=64, n_threads=2), backend="llama-inproc")
    try:
        long_prompt = "Question: " + "hammer nails screws " * 80 + "\nAnswer:"
        requests = [GenerationRequest("long", long_prompt, seed=1), GenerationRequest("ok", PROMPT, seed=1)]
        answers = _answers(eng, requests, SamplingParams(max_tokens=8, stop=()))
    finally:
        eng.close()
    assert answers["long"].finish_reason == "error"
    assert "context" in answers["long"].error
    assert answers["ok"].finish_reason == "length" and answers["ok"].text


def test_context_size_is_per_answer_and_the_shared_cache_fits_every_answer_in_flight(tiny_model):
    from auditdesk.core.engine.llama_batched import BatchedGenerator

    eng = BatchedGenerator(ModelSpec(path=str(tiny_model), n_ctx=64, n_threads=2), max_sequences=8)
    try:
        info = eng.info()
        n_prompt = len(eng.tokenize(PROMPT))
        answers = _answers(eng, [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(8)],
                           SamplingParams(max_tokens=500, stop=()))
    finally:
        eng.close()
    assert (info.n_ctx, info.max_sequences) == (64, 8)
    assert info.kv_cells >= 64 * 8
    # Each answer is limited by its own context, not by the bigger shared cache.
    assert {(a.finish_reason, a.completion_tokens) for a in answers.values()} == {("length", 64 - n_prompt)}


def test_admission_waits_for_room_when_the_shared_cache_is_small(tiny_model):
    from auditdesk.core.engine.llama_batched import BatchedGenerator

    # 16 answers of 40 tokens cannot all be in flight in 256 cells: admission must wait, not fail.
    eng = BatchedGenerator(ModelSpec(path=str(tiny_model), n_ctx=256, n_threads=2), max_sequences=16, kv_cells=256)
    try:
        assert eng.info().kv_cells == 256
        requests = [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(16)]
        answers = _answers(eng, requests, SamplingParams(max_tokens=40, stop=()))
    finally:
        eng.close()
    assert len(answers) == 16
    assert all(a.finish_reason == "length" and a.completion_tokens == 40 for a in answers.values())


def test_shared_cache_size_stays_within_its_memory_budget():
    from auditdesk.core.engine.llama_batched import KV_POOL_BUDGET_BYTES, pool_cells

    per_cell = 18 * 1024  # Gemma 3 270M: 18 layers x K and V x 256 dims x 2 bytes
    assert pool_cells(512, 4, per_cell, None) == 2048  # small: every sequence gets a full context
    assert pool_cells(2048, 32, per_cell, None) == KV_POOL_BUDGET_BYTES // per_cell // 256 * 256
    assert pool_cells(2048, 32, per_cell, available=8 * 2048 * per_cell) == 2 * 2048  # a quarter of free memory
    assert pool_cells(100_000, 32, per_cell, None) == 100_000  # never less than one full context


def test_loglikelihood_matches_a_naive_llama_evaluation(engine, tiny_model):
    import numpy as np
    from llama_cpp import Llama

    texts = ["Question: where can I buy a hammer?", "That tool is in the hardware store."]
    ours = engine.loglikelihood(texts)
    llm = Llama(model_path=str(tiny_model), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    try:
        for text, (total, count) in zip(texts, ours):
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            llm.reset()
            llm.eval(tokens)
            scores = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
            expected = 0.0
            for i in range(len(tokens) - 1):
                row = scores[i]
                expected += row[tokens[i + 1]] - (row.max() + math.log(np.exp(row - row.max()).sum()))
            assert count == len(tokens) - 1
            assert total < 0
            assert total == pytest.approx(expected, abs=1e-3 * count + 1e-3)
    finally:
        llm.close()


def test_lora_changes_the_answers(tiny_model, tiny_lora):
    requests = [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(4)]
    params = SamplingParams(temperature=0.0, max_tokens=16, stop=())
    base = open_engine(ModelSpec(path=str(tiny_model), n_ctx=256, n_threads=2), backend="llama-inproc")
    tuned = open_engine(
        ModelSpec(path=str(tiny_model), lora_path=str(tiny_lora), n_ctx=256, n_threads=2), backend="llama-inproc"
    )
    try:
        base_text = {a.text for a in base.generate(requests, params)}
        tuned_text = {a.text for a in tuned.generate(requests, params)}
        base_ll = base.loglikelihood([PROMPT])[0][0]
        tuned_ll = tuned.loglikelihood([PROMPT])[0][0]
    finally:
        base.close()
        tuned.close()
    assert base_text != tuned_text
    assert base_ll != pytest.approx(tuned_ll)


def test_gpu_request_without_gpu_build_is_recorded(tiny_model):
    from auditdesk.core.engine.hardware import gpu_offload_supported

    eng = open_engine(ModelSpec(path=str(tiny_model), n_ctx=128, n_threads=2, n_gpu_layers=99), backend="llama-inproc")
    try:
        info = eng.info()
    finally:
        eng.close()
    assert info.n_gpu_layers_requested == 99
    assert info.gpu_offload_supported == gpu_offload_supported()
    if not info.gpu_offload_supported:
        assert info.n_gpu_layers_used == 0
        assert any("no GPU support" in note for note in info.notes)
    assert info.n_threads == 2


def test_bad_model_file_is_a_plain_engine_error(tmp_path):
    from auditdesk.core.engine import EngineError

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(EngineError, match="could not load"):
        open_engine(ModelSpec(path=str(bad), n_threads=2), backend="llama-inproc")


def test_time_limit_ends_with_time(engine):
    answers = _answers(
        engine, [GenerationRequest("x", PROMPT, seed=3)], SamplingParams(max_tokens=50, stop=(), time_limit_s=0.0)
    )
    assert answers["x"].finish_reason == "time"
    assert 1 <= answers["x"].completion_tokens < 50


class _SteppingClock:
    """A clock that moves one second each time it is read, so every step "takes" a second."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


def test_the_time_limit_counts_an_answers_share_of_each_step_not_the_wall_clock(engine, monkeypatch):
    """Eight answers advancing together each pay an eighth of a step: they all run to full length,
    though the wall clock passes the limit after a few steps; alone, an answer is cut by it.

    Cutting by the wall clock made a batch's answers depend on the computer's speed and load,
    so the report's reproduce command could not give the same answers."""
    from auditdesk.core.engine import llama_batched

    monkeypatch.setattr(llama_batched, "time", _SteppingClock())
    params = SamplingParams(max_tokens=24, stop=(), time_limit_s=5.0)
    together = _answers(engine, [GenerationRequest(f"t{i}", PROMPT, seed=i) for i in range(8)], params)
    assert {a.finish_reason for a in together.values()} <= {"length", "stop"}
    assert max(a.completion_tokens for a in together.values()) == 24
    assert max(a.seconds for a in together.values()) > 5.0  # the wall clock did pass the limit
    alone = _answers(engine, [GenerationRequest("alone", PROMPT, seed=0)], params)
    assert alone["alone"].finish_reason == "time"
    assert alone["alone"].completion_tokens < 24
