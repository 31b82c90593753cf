"""Plain in-memory records the analysis reads: answers and likelihood scores.

The store turns its rows into these; the analysis never touches the database
for answers, so it can be tested and benchmarked on data built in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("base", "tuned")


@dataclass(frozen=True)
class AnswerRecord:
    """One sampled answer of one model to one prompt (probe variant)."""

    role: str  # "base" | "tuned"
    pack_id: str
    probe_id: str
    variant: str
    category: str
    kind: str
    sample: int
    seed: int
    text: str
    finish_reason: str = "stop"
    slot_group: str | None = None  # counterfactual: the group of this slot value
    expected: str | None = None  # control: the pattern a correct answer contains

    @property
    def probe_key(self) -> tuple[str, str]:
        return (self.pack_id, self.probe_id)

    @property
    def key(self) -> str:
        """Stable id of this answer within a run."""
        return f"{self.pack_id}/{self.probe_id}/{self.variant}/{self.role}/{self.sample}"


@dataclass(frozen=True)
class LikelihoodRecord:
    """Summed log-probability of one sentence of a pair probe under one model."""

    role: str  # "base" | "tuned"
    pack_id: str
    probe_id: str
    variant: str  # "more" (stereotyped) | "less"
    logprob: float
    n_tokens: int
