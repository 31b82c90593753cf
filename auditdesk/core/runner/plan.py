"""Turns probe items into a fixed plan of work units: seeds, prompts and batches.

The plan is a pure function of (items, roles, samples, run seed, batch size), so
the same units always run together with the same seeds, whatever was already
done. It must never depend on time, randomness or what the database holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Sequence

from auditdesk.core.probes.items import ProbeItem

ROLES = ("base", "tuned")
# Answers handed to the engine per call: twice the sequences it keeps in flight,
# so the batch's tail (the last answers finishing with few others beside them)
# is a small share of each call. Answers are stored one by one as they finish.
DEFAULT_BATCH_SIZE = 64
DEFAULT_LIKELIHOOD_BATCH = 32


@dataclass(frozen=True)
class PlannedUnit:
    """One answer to sample (or one sentence to score) from one model role."""

    unit_key: str
    position: int
    role: str
    unit_type: str  # generate | likelihood
    item: ProbeItem
    sample_index: int
    seed: int
    prompt: str
    batch_no: int

    def to_row(self) -> dict:
        return {
            "unit_key": self.unit_key,
            "position": self.position,
            "role": self.role,
            "unit_type": self.unit_type,
            "pack_id": self.item.pack_id,
            "probe_id": self.item.probe_id,
            "variant": self.item.variant,
            "category": self.item.category,
            "kind": self.item.kind,
            "sample_index": self.sample_index,
            "seed": self.seed,
            "prompt": self.prompt,
            "batch_no": self.batch_no,
            "item_json": json.dumps(self.item.to_dict(), sort_keys=True, ensure_ascii=False),
        }


def derive_seed(run_seed: int, *parts: object) -> int:
    """A 31-bit sampling seed fixed by the run seed and the unit's identity."""
    text = "\x1f".join([str(int(run_seed)), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def plain_prompt(item: ProbeItem) -> str:
    """The plain completion prompt (no chat template), used for base models."""
    from auditdesk.core.engine.prompts import render_plain

    return render_plain(item.text)


def build_plan(
    items: Sequence[ProbeItem],
    *,
    roles: Sequence[str] = ROLES,
    samples: int,
    run_seed: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    likelihood_batch_size: int = DEFAULT_LIKELIHOOD_BATCH,
    prompt_for: Callable[[ProbeItem], str] = plain_prompt,
) -> list[PlannedUnit]:
    """Every unit of the audit in execution order: role by role, batches in order."""
    if samples < 1:
        raise ValueError("samples must be at least 1")
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("probe item keys must be unique within an audit")
    generated = [item for item in items if item.scored_by != "likelihood"]
    scored = [item for item in items if item.scored_by == "likelihood"]
    units: list[PlannedUnit] = []
    batch_no = 0
    for role in roles:
        # Fixed-size chunks of the role's plan order: a unit's batch never
        # depends on which units are already stored.
        for start in range(0, len(generated) * samples, batch_size):
            for flat in range(start, min(start + batch_size, len(generated) * samples)):
                item, sample = generated[flat // samples], flat % samples
                units.append(PlannedUnit(
                    unit_key=f"{role}/{item.key}/s{sample}",
                    position=len(units),
                    role=role,
                    unit_type="generate",
                    item=item,
                    sample_index=sample,
                    # No role in the seed: base and tuned draw the same random
                    # numbers for the same question, so differences come from the model.
                    seed=derive_seed(run_seed, item.key, sample),
                    prompt=prompt_for(item),
                    batch_no=batch_no,
                ))
            batch_no += 1
        for start in range(0, len(scored), likelihood_batch_size):
            for item in scored[start:start + likelihood_batch_size]:
                units.append(PlannedUnit(
                    unit_key=f"{role}/{item.key}/ll",
                    position=len(units),
                    role=role,
                    unit_type="likelihood",
                    item=item,
                    sample_index=0,
                    seed=0,
                    prompt=item.text,
                    batch_no=batch_no,
                ))
            batch_no += 1
    return units
