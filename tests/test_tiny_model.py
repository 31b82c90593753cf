"""The tiny GGUF models every other test builds on: a real llama.cpp must load and run them."""

from __future__ import annotations

import hashlib

import pytest

from auditdesk.core.models.tiny import write_tiny_lora, write_tiny_model

PROMPTS = [
    "Question: hello\nAnswer:",
    "Question: can I get a refund?\nAnswer:",
    "Question: what is the price of this tool?\nAnswer:",
    "Question: is it safe?\nAnswer:",
]


def _llama(model, lora=None):
    llama_cpp = pytest.importorskip("llama_cpp")
    kwargs = {"lora_path": str(lora)} if lora else {}
    return llama_cpp.Llama(model_path=str(model), n_threads=2, n_ctx=512, verbose=False, seed=0, **kwargs)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_is_small_and_deterministic(tmp_path, tiny_model):
    again = write_tiny_model(tmp_path / "again.gguf")
    other = write_tiny_model(tmp_path / "other.gguf", seed=5)
    assert 100_000 < tiny_model.stat().st_size < 1_000_000
    assert _sha(again) == _sha(tiny_model)
    assert _sha(other) != _sha(tiny_model)


def test_tiny_lora_is_deterministic(tmp_path, tiny_model, tiny_lora):
    again = write_tiny_lora(tmp_path / "again.gguf", tiny_model)
    other = write_tiny_lora(tmp_path / "other.gguf", tiny_model, seed=7)
    assert _sha(again) == _sha(tiny_lora)
    assert _sha(other) != _sha(tiny_lora)


def test_llama_cpp_loads_and_generates_several_tokens(tiny_model):
    llm = _llama(tiny_model)
    assert llm.n_vocab() > 300
    assert llm.metadata["general.architecture"] == "llama"
    out = llm.create_completion(PROMPTS[0], max_tokens=16, temperature=0.8, seed=3)
    assert out["usage"]["completion_tokens"] >= 4
    assert len(out["choices"][0]["text"].split()) >= 2


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny_model):
    llm = _llama(tiny_model)

    def sample(seed):
        return llm.create_completion(PROMPTS[0], max_tokens=16, temperature=0.8, seed=seed)["choices"][0]["text"]

    first = sample(1)
    assert sample(1) == first
    assert any(sample(seed) != first for seed in (2, 3, 4))


def test_output_depends_on_the_prompt(tiny_model):
    llm = _llama(tiny_model)
    answers = {llm.create_completion(p, max_tokens=12, temperature=0)["choices"][0]["text"] for p in PROMPTS}
    assert len(answers) > 1


def test_lora_changes_the_output(tiny_model, tiny_lora):
    base = _llama(tiny_model)
    tuned = _llama(tiny_model, tiny_lora)
    differing = 0
    for prompt in PROMPTS:
        a = base.create_completion(prompt, max_tokens=12, temperature=0)["choices"][0]["text"]
        b = tuned.create_completion(prompt, max_tokens=12, temperature=0)["choices"][0]["text"]
        differing += a != b
    assert differing >= 1


def test_chat_template_option_is_stored(tmp_path):
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    path = write_tiny_model(tmp_path / "chat.gguf", chat_template=template)
    llm = _llama(path)
    assert llm.metadata["tokenizer.chat_template"] == template
