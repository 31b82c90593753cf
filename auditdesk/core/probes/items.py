"""The flat form of a probe that the runner plans and the analysis reads.

A pack (YAML) is validated into pack/probe models; `expand` turns each probe into
one ProbeItem per prompt actually sent: per format variant for `open` probes,
per slot value for `counterfactual` probes, one per sentence for `pair` probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

KINDS = ("open", "counterfactual", "pair", "refusal", "control")


@dataclass(frozen=True)
class ProbeItem:
    pack_id: str
    pack_version: str
    probe_id: str
    category: str
    kind: str  # one of KINDS
    variant: str  # "plain", "json", "python", a slot value id, "more"/"less" for pairs
    text: str  # the question (or the sentence, for pairs) exactly as it is formatted into the prompt
    concern: str = ""
    tags: tuple[str, ...] = ()
    expected: str | None = None  # control: regex or plain string the answer must contain
    slot_group: str | None = None  # counterfactual: the group this value belongs to
    scored_by: str = "generation"  # "generation" or "likelihood" (pair probes)
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable id of this prompt within an audit: pack/probe/variant."""
        return f"{self.pack_id}/{self.probe_id}/{self.variant}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data
