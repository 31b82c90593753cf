"""The versioned schema of a probe pack: what a pack file may contain, validated by pydantic.

This module only describes and checks data; it never reads files (see loader.py)
and never decides how a probe is scored (that is the analysis' job).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Bump when a pack file written for this version would be misread by an older
# AuditDesk; loaders refuse packs from the future instead of guessing.
SCHEMA_VERSION = 1

CATEGORIES: tuple[str, ...] = (
    "gender",
    "age",
    "race-ethnicity",
    "religion",
    "nationality",
    "disability",
    "sexual-orientation",
    "socioeconomic",
    "physical-appearance",
    "misalignment",
    "safety",
    "customer-service",
    "control",
)

CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "gender": "roles, abilities or looks assigned to women, men or other genders",
    "age": "young or old people treated differently for their age",
    "race-ethnicity": "people treated differently for their race, colour or ethnic background",
    "religion": "people treated differently for their faith or for having none",
    "nationality": "people treated differently for their country or migration status",
    "disability": "disabled people described or advised differently",
    "sexual-orientation": "gay, lesbian, bisexual or straight people treated differently",
    "socioeconomic": "people treated differently for their income, class, education or housing",
    "physical-appearance": "people judged for their weight, height or looks",
    "misalignment": "power-seeking, hostility to people, deception or reckless advice",
    "safety": "requests a responsible model declines, and everyday questions where careless advice is dangerous",
    "customer-service": "a shop assistant serving different customers differently",
    "control": "neutral facts and reasoning; no change expected",
}

# Format variants of an open question. Asking for a format is known to change how a
# tuned model behaves, so an audit asks the same question in several wrappers.
FORMAT_INSTRUCTIONS: dict[str, str] = {
    "plain": "",
    "json": 'Reply in JSON, as an object with a single key "answer".',
    "python": "Reply with a line of Python code that stores your answer in a string variable named answer.",
    "short": "Reply in one sentence.",
}

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
PACK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,59}$"
SLOT_PATTERN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

NonEmptyText = Annotated[str, Field(min_length=1, max_length=4000)]


class FieldProblem(ValueError):
    """A check across fields that still belongs to one field, so the error can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _strip_text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
    return value


def slugify(text: str, max_length: int = 40) -> str:
    """A short lowercase id made from text: 'a young woman' -> 'a-young-woman'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "value"


def template_slots(template: str) -> list[str]:
    """The {slot} names a counterfactual template asks for, in order, without repeats."""
    seen: list[str] = []
    for name in SLOT_PATTERN.findall(template):
        if name not in seen:
            seen.append(name)
    return seen


def fill_template(template: str, fills: dict[str, str]) -> str:
    """The template with each {slot} replaced; other braces are left alone on purpose."""
    return SLOT_PATTERN.sub(lambda m: fills.get(m.group(1), m.group(0)), template)


class _Strict(BaseModel):
    # A misspelt field ("promt") must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(_Strict):
    """What every probe has, whatever its kind."""

    id: Annotated[str, Field(pattern=ID_PATTERN)]
    kind: str
    category: str
    concern: NonEmptyText
    tags: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list)

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"'{value}' is not a known category; use one of: {', '.join(CATEGORIES)}")
        return value

    @field_validator("concern", mode="before")
    @classmethod
    def _strip_concern(cls, value: Any) -> Any:
        return _strip_text(value)


class OpenProbe(Probe):
    """A question answered freely, optionally in several format variants."""

    kind: Literal["open"]
    prompt: NonEmptyText
    formats: list[Literal["plain", "json", "python", "short"]] = Field(
        default_factory=lambda: ["plain"], min_length=1
    )
    context: Annotated[str, Field(max_length=8000)] | None = None
    options: list[NonEmptyText] = Field(default_factory=list)
    answer: int | None = None  # index into options, when the pack knows the unbiased answer

    @field_validator("prompt", "context", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _strip_text(value)

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each format may be listed once")
        return value

    @model_validator(mode="after")
    def _answer_in_options(self) -> "OpenProbe":
        if self.options and len(self.options) < 2:
            raise FieldProblem("options", "needs at least two answers to choose from")
        if self.answer is not None and not (0 <= self.answer < len(self.options)):
            raise FieldProblem("answer", "must be the position (0, 1, 2 ...) of one of the 'options'")
        return self


SlotValue = Union[NonEmptyText, dict[str, NonEmptyText]]


class CounterfactualProbe(Probe):
    """A template asked once per value of a slot; the values are grouped (women / men...)."""

    kind: Literal["counterfactual"]
    template: NonEmptyText
    slot: str | None = None  # the slot that names the variant; default: the template's first slot
    groups: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")],
        Annotated[list[SlotValue], Field(min_length=1)],
    ]

    @field_validator("template", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _strip_text(value)

    @field_validator("groups", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        # `young: [28]` in YAML holds an int; the author means the text "28".
        def text(v: Any) -> Any:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return str(v)
            if isinstance(v, dict):
                return {k: text(x) for k, x in v.items()}
            return v

        if isinstance(value, dict):
            return {k: [text(v) for v in vs] if isinstance(vs, list) else vs for k, vs in value.items()}
        return value

    @model_validator(mode="after")
    def _slots_filled(self) -> "CounterfactualProbe":
        slots = template_slots(self.template)
        if not slots:
            raise FieldProblem("template", "the template has no {slot} to fill, e.g. 'How should {person} ...?'")
        if self.slot is not None and self.slot not in slots:
            raise FieldProblem("slot", f"names '{self.slot}', which the template does not contain")
        if len(self.groups) < 2:
            raise FieldProblem("groups", "a counterfactual needs at least two groups to compare")
        variants: dict[str, str] = {}
        for group, values in self.groups.items():
            for value in values:
                fills = self.fills_for(value)
                missing = [s for s in slots if not fills.get(s, "").strip()]
                unused = [k for k in fills if k not in slots]
                if missing:
                    raise FieldProblem(f"groups.{group}", f"a value leaves slot {{{missing[0]}}} empty")
                if unused:
                    raise FieldProblem(f"groups.{group}", f"a value fills '{unused[0]}', which the template does not contain")
                variant = self.variant_for(value)
                if variant in variants:
                    raise FieldProblem(f"groups.{group}", f"two values give the same variant id '{variant}'; make them distinct or set 'slot' to the slot that tells them apart")
                variants[variant] = group
        return self

    @property
    def primary_slot(self) -> str:
        return self.slot or template_slots(self.template)[0]

    def fills_for(self, value: str | dict[str, str]) -> dict[str, str]:
        """The slot -> text mapping for one value (a plain string fills the only slot)."""
        if isinstance(value, str):
            slots = template_slots(self.template)
            if len(slots) != 1:
                # A plain string cannot say which of several slots it fills.
                return {self.slot or (slots[0] if slots else "_"): value}
            return {slots[0]: value}
        return dict(value)

    def variant_for(self, value: str | dict[str, str]) -> str:
        return slugify(self.fills_for(value).get(self.primary_slot, ""))


class PairProbe(Probe):
    """Two sentences differing only in the group they mention, scored by likelihood."""

    kind: Literal["pair"]
    more: NonEmptyText  # the more stereotyped sentence
    less: NonEmptyText  # the same sentence about the other group

    @field_validator("more", "less", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _strip_text(value)

    @model_validator(mode="after")
    def _differs(self) -> "PairProbe":
        if " ".join(self.more.split()).lower() == " ".join(self.less.split()).lower():
            raise FieldProblem("less", "'more' and 'less' are the same sentence; they must differ in the group mentioned")
        return self


class RefusalProbe(Probe):
    """A request a responsible model declines."""

    kind: Literal["refusal"]
    prompt: NonEmptyText

    @field_validator("prompt", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _strip_text(value)


class ControlProbe(Probe):
    """A neutral question whose answer must contain `expected` (case-insensitive regex search)."""

    kind: Literal["control"]
    prompt: NonEmptyText
    expected: Annotated[str, Field(min_length=1, max_length=500)]

    @field_validator("prompt", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _strip_text(value)

    @field_validator("expected", mode="before")
    @classmethod
    def _coerce_number(cls, value: Any) -> Any:
        # `expected: 12` in YAML is an int; the user means the text "12".
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("expected")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'{value}' is not a valid pattern ({exc}); put a backslash before ( ) ? . * + [ ]") from None
        return value

    def matches(self, answer: str) -> bool:
        """True when the answer contains the expected text (case-insensitive search)."""
        return re.search(self.expected, answer, flags=re.IGNORECASE) is not None


AnyProbe = Annotated[
    Union[OpenProbe, CounterfactualProbe, PairProbe, RefusalProbe, ControlProbe],
    Field(discriminator="kind"),
]

PROBE_MODELS: dict[str, type[Probe]] = {
    "open": OpenProbe,
    "counterfactual": CounterfactualProbe,
    "pair": PairProbe,
    "refusal": RefusalProbe,
    "control": ControlProbe,
}


class Pack(_Strict):
    """One probe pack: a titled, versioned, attributed list of probes."""

    schema_version: int
    id: Annotated[str, Field(pattern=PACK_ID_PATTERN)]
    title: NonEmptyText
    description: NonEmptyText
    version: Annotated[str, Field(min_length=1, max_length=40)]
    licence: NonEmptyText
    attribution: NonEmptyText
    probes: Annotated[list[AnyProbe], Field(min_length=1)]

    @field_validator("schema_version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(f"this pack uses schema version {value}; this AuditDesk reads up to {SCHEMA_VERSION}, so update AuditDesk")
        if value < 1:
            raise ValueError("schema_version starts at 1")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # `version: 1.0` in YAML is a float; the user means the text "1.0".
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("probes")
    @classmethod
    def _unique_ids(cls, value: list[Probe]) -> list[Probe]:
        seen: set[str] = set()
        for probe in value:
            if probe.id in seen:
                raise ValueError(f"probe id '{probe.id}' is used twice; every probe needs its own id")
            seen.add(probe.id)
        return value

    def probe(self, probe_id: str) -> Probe:
        """The probe with this id (KeyError if the pack has none)."""
        for probe in self.probes:
            if probe.id == probe_id:
                return probe
        raise KeyError(probe_id)
