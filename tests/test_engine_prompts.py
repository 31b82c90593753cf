"""Prompt formats: plain completion, sandboxed chat templates, and the fallback when a template misbehaves."""

from __future__ import annotations

import time

from auditdesk.core.engine.prompts import (
    CHAT_FORMAT,
    PLAIN_FORMAT,
    choose_prompt_format,
    render_chat,
    render_prompts,
)

GOOD = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
ENDLESS = "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}"
SNEAKY = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def test_choose_prompt_format():
    assert choose_prompt_format({"tokenizer.chat_template": GOOD}, None) == CHAT_FORMAT
    assert choose_prompt_format({}, None) == PLAIN_FORMAT
    assert choose_prompt_format({"has_chat_template": True}, "plain") == PLAIN_FORMAT
    assert choose_prompt_format({}, "chat") == PLAIN_FORMAT


def test_chat_template_renders_a_user_turn():
    text = render_chat(GOOD, "Hi?", bos_token="<bos>")
    assert text == "<bos><start_of_turn>user\nHi?<end_of_turn>\n<start_of_turn>model\n"
    out = render_prompts(["Hi?"], CHAT_FORMAT, template=GOOD, bos_token="<bos>")
    assert out.format_id.startswith("chat-template:") and out.stop == ()


def test_endless_template_falls_back_to_plain_within_the_time_limit():
    started = time.monotonic()
    out = render_prompts(["Hi?"], CHAT_FORMAT, template=ENDLESS, time_limit_s=0.5)
    assert time.monotonic() - started < 3
    assert out.format_id == PLAIN_FORMAT
    assert out.prompts == ["Question: Hi?\nAnswer:"]
    assert "ran longer" in out.notes[0]


def test_template_escaping_the_sandbox_falls_back_and_says_so():
    out = render_prompts(["Hi?"], CHAT_FORMAT, template=SNEAKY)
    assert out.format_id == PLAIN_FORMAT
    assert "SecurityError" in out.notes[0]


def test_worker_renders_the_models_own_template(tmp_path):
    from auditdesk.core.engine import ModelSpec, open_engine
    from auditdesk.core.models.tiny import write_tiny_model

    path = write_tiny_model(tmp_path / "chat.gguf", chat_template=GOOD)
    engine = open_engine(ModelSpec(path=str(path), n_ctx=128, n_threads=1))
    try:
        out = engine.render_prompts(["Hi?"], CHAT_FORMAT)
    finally:
        engine.close()
    assert out.format_id.startswith("chat-template:")
    assert out.prompts[0].endswith("<start_of_turn>model\n")
