"""How a question becomes the text a model sees: a plain completion format or the model's chat template.

Chat templates come from untrusted GGUF files, so they are rendered only with
Jinja's immutable sandbox, under a time limit, inside the model worker; a
template that fails or runs too long falls back to the plain format, and says so.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

PLAIN_FORMAT = "plain-qa-v1"
CHAT_FORMAT = "chat-template"
PLAIN_STOP: tuple[str, ...] = ("\nQuestion:",)
TEMPLATE_KEY = "tokenizer.chat_template"
RENDER_TIME_LIMIT_S = 2.0


@dataclass
class RenderedPrompts:
    """The prompts actually sent, the format that produced them, and why if it changed."""

    format_id: str  # "plain-qa-v1" or "chat-template:<sha256 prefix>"
    prompts: list[str]
    stop: tuple[str, ...]
    notes: list[str] = field(default_factory=list)


def render_plain(question: str) -> str:
    """The plain completion format for base models without a chat template."""
    return f"Question: {question.strip()}\nAnswer:"


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def choose_prompt_format(model_card_or_metadata: Mapping | None, user_choice: str | None = None) -> str:
    """The format an audit uses: the user's choice, else the chat template when the model has one.

    `model_card_or_metadata` may be an inspection card (with `chat_template` or
    `has_chat_template`) or raw GGUF metadata (with `tokenizer.chat_template`).
    Returns "plain-qa-v1" or "chat-template"; the worker records the template hash.
    """
    choice = (user_choice or "auto").strip().lower()
    if choice in {"plain", PLAIN_FORMAT}:
        return PLAIN_FORMAT
    card = model_card_or_metadata or {}
    has_template = bool(
        card.get(TEMPLATE_KEY) or card.get("chat_template") or card.get("has_chat_template")
    )
    if choice in {"chat", CHAT_FORMAT}:
        return CHAT_FORMAT if has_template else PLAIN_FORMAT
    if choice != "auto":
        raise ValueError(f"unknown prompt format '{user_choice}': use auto, chat or plain.")
    return CHAT_FORMAT if has_template else PLAIN_FORMAT


class TemplateTimeout(Exception):
    pass


def render_chat(
    template: str,
    question: str,
    *,
    bos_token: str = "",
    eos_token: str = "",
    time_limit_s: float = RENDER_TIME_LIMIT_S,
) -> str:
    """Render one user turn with a chat template in Jinja's immutable sandbox, within a time limit."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(f"the chat template refused the prompt: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)
    context = {
        "messages": [{"role": "user", "content": question}],
        "add_generation_prompt": True,
        "bos_token": bos_token,
        "eos_token": eos_token,
    }
    return _with_time_limit(lambda: compiled.render(**context), time_limit_s)


def _with_time_limit(func, seconds: float):
    # In the worker's main thread a timer signal interrupts a looping template;
    # elsewhere we can only stop waiting for it (the thread is abandoned).
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum, frame):
            raise TemplateTimeout()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return func()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: dict = {}

    def run():
        try:
            box["value"] = func()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="chat-template")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TemplateTimeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def render_prompts(
    questions: Sequence[str],
    format_id: str,
    *,
    template: str | None,
    bos_token: str = "",
    eos_token: str = "",
    time_limit_s: float = RENDER_TIME_LIMIT_S,
) -> RenderedPrompts:
    """Turn questions into prompts in the chosen format, falling back to plain when the template fails."""
    if format_id.startswith(CHAT_FORMAT):
        if not template:
            return RenderedPrompts(
                PLAIN_FORMAT,
                [render_plain(q) for q in questions],
                PLAIN_STOP,
                ["the model has no chat template, so the plain question-and-answer format was used."],
            )
        try:
            prompts = [
                render_chat(template, q, bos_token=bos_token, eos_token=eos_token, time_limit_s=time_limit_s)
                for q in questions
            ]
        except TemplateTimeout:
            reason = f"it ran longer than {time_limit_s:g} s"
        except Exception as exc:  # any template failure: the sandbox raised or the template is broken
            reason = f"it failed ({type(exc).__name__}: {str(exc)[:200]})"
        else:
            return RenderedPrompts(f"{CHAT_FORMAT}:{template_hash(template)}", prompts, ())
        return RenderedPrompts(
            PLAIN_FORMAT,
            [render_plain(q) for q in questions],
            PLAIN_STOP,
            [f"the model's chat template could not be used because {reason}; the plain question-and-answer format was used instead."],
        )
    if format_id != PLAIN_FORMAT:
        raise ValueError(f"unknown prompt format '{format_id}'.")
    return RenderedPrompts(PLAIN_FORMAT, [render_plain(q) for q in questions], PLAIN_STOP)
