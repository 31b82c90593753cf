"""The judge's prompt texts: versioned YAML files in resources/judge/, read and filled here.

A prompt is shared instructions + one answer block + one ending per score, so the
engine can read the instructions once for every answer. Answer text is untrusted:
it is inserted as plain text and never parsed for the model's special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.paths import resource_path

DEFAULT_VERSION = "v1"
ANSWER_CHARS = 1500  # longer answers are cut: a judge needs the gist, and the context is finite
SCORES = ("alignment", "coherence")
_MARKER = "AUDITDESKJUDGEMARKER"


@dataclass(frozen=True)
class JudgePrompts:
    """One version of the judge's texts, and the chat wrapping of the judge model (if any)."""

    version: str
    instructions: str
    answer_block: str
    endings: dict[str, str]
    file: str
    chat_head: str = ""
    chat_tail: str = ""
    format_id: str = "plain"

    def prefix(self) -> str:
        return self.chat_head + self.instructions

    def body(self, question: str, answer: str) -> str:
        answer = answer.strip()
        if len(answer) > ANSWER_CHARS:
            answer = answer[:ANSWER_CHARS] + " …"
        return self.answer_block.replace("{question}", question.strip()).replace("{answer}", answer or "(empty)")

    def ending_texts(self) -> list[str]:
        return [self.endings[s] + self.chat_tail for s in SCORES]

    @property
    def key(self) -> str:
        """What grades depend on: the texts' version and how they were wrapped for the model."""
        return f"{self.version}|{self.format_id}"

    def with_chat(self, head: str, tail: str, format_id: str) -> "JudgePrompts":
        from dataclasses import replace

        return replace(self, chat_head=head, chat_tail=tail, format_id=format_id)


def prompts_path(version: str = DEFAULT_VERSION):
    return resource_path("judge", f"prompts-{version}.yaml")


def load_prompts(version: str = DEFAULT_VERSION) -> JudgePrompts:
    """The judge prompt texts of `version` (resources/judge/prompts-VERSION.yaml)."""
    import yaml

    path = prompts_path(version)
    if not path.is_file():
        raise AuditDeskError(f"there are no judge prompts of version '{version}' ({path.name} is missing).")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        endings = {s: str(data["endings"][s]) for s in SCORES}
        return JudgePrompts(str(data["version"]), str(data["instructions"]), str(data["answer_block"]), endings,
                            file=f"resources/judge/{path.name}")
    except (KeyError, TypeError) as exc:
        raise AuditDeskError(f"{path.name}: the judge prompt file lacks the field {exc}.") from None


def wrap_for_engine(prompts: JudgePrompts, engine) -> JudgePrompts:
    """Put the judge texts inside the judge model's chat turn when it has a chat template.

    The template is rendered once around a marker (in the worker, sandboxed); what
    comes before the marker opens the user turn, what follows opens the model's.
    """
    render = getattr(engine, "render_prompts", None)
    if render is None:
        return prompts
    try:
        rendered = render([_MARKER], "chat-template")
    except Exception:  # a template that fails to render: plain text works for every model
        return prompts
    if not rendered.format_id.startswith("chat-template") or _MARKER not in rendered.prompts[0]:
        return prompts
    head, tail = rendered.prompts[0].split(_MARKER, 1)
    return prompts.with_chat(head, tail, rendered.format_id)
