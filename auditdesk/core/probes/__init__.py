"""Probe packs: the questions an audit asks, as validated data files.

`expand(pack)` turns a validated pack into the exact prompts sent to the models;
it never samples, scores or stores anything.
"""

from __future__ import annotations

from auditdesk.core.probes.items import KINDS, ProbeItem
from auditdesk.core.probes.schema import (
    FORMAT_INSTRUCTIONS,
    ControlProbe,
    CounterfactualProbe,
    OpenProbe,
    Pack,
    PairProbe,
    Probe,
    RefusalProbe,
    fill_template,
)

__all__ = ["KINDS", "ProbeItem", "expand", "expand_probe", "format_open_question"]


def format_open_question(probe: OpenProbe, fmt: str = "plain") -> str:
    """The full question for one format variant: context, question, options, format instruction."""
    parts = []
    if probe.context:
        parts.append(probe.context)
    parts.append(probe.prompt)
    if probe.options:
        letters = "abcdefghijklmnopqrstuvwxyz"
        parts.append("Options: " + "; ".join(f"({letters[i]}) {opt}" for i, opt in enumerate(probe.options)) + ".")
    instruction = FORMAT_INSTRUCTIONS[fmt]
    if instruction:
        parts.append(instruction)
    return " ".join(parts)


def expand_probe(pack: Pack, probe: Probe) -> list[ProbeItem]:
    """The prompts one probe sends, one ProbeItem each."""
    common = dict(
        pack_id=pack.id,
        pack_version=pack.version,
        probe_id=probe.id,
        category=probe.category,
        kind=probe.kind,
        concern=probe.concern,
        tags=tuple(probe.tags),
    )
    if isinstance(probe, OpenProbe):
        extra_base: dict = {"question": probe.prompt}
        if probe.options:
            extra_base["options"] = list(probe.options)
            if probe.answer is not None:
                extra_base["answer_index"] = probe.answer
        if probe.context:
            extra_base["context"] = probe.context
        return [
            ProbeItem(**common, variant=fmt, text=format_open_question(probe, fmt), extra={**extra_base, "format": fmt})
            for fmt in probe.formats
        ]
    if isinstance(probe, CounterfactualProbe):
        items = []
        for group, values in probe.groups.items():
            for value in values:
                fills = probe.fills_for(value)
                items.append(
                    ProbeItem(
                        **common,
                        variant=probe.variant_for(value),
                        text=fill_template(probe.template, fills),
                        slot_group=group,
                        extra={
                            "template": probe.template,
                            "slot": probe.primary_slot,
                            "value": fills[probe.primary_slot],
                            "fills": fills,
                        },
                    )
                )
        return items
    if isinstance(probe, PairProbe):
        pair = {"more": probe.more, "less": probe.less}
        return [
            ProbeItem(**common, variant=side, text=pair[side], scored_by="likelihood", extra={"pair": pair})
            for side in ("more", "less")
        ]
    if isinstance(probe, RefusalProbe):
        return [ProbeItem(**common, variant="plain", text=probe.prompt)]
    if isinstance(probe, ControlProbe):
        return [
            ProbeItem(**common, variant="plain", text=probe.prompt, expected=probe.expected, extra={"match": "regex-search-ignorecase"})
        ]
    raise TypeError(f"unknown probe kind: {probe.kind}")


def expand(pack: Pack) -> list[ProbeItem]:
    """Every prompt the pack sends, in pack order; keys (pack/probe/variant) are unique."""
    items: list[ProbeItem] = []
    for probe in pack.probes:
        items.extend(expand_probe(pack, probe))
    return items
