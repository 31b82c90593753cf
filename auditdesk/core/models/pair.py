"""Pair inspection: is the tuned model (or adapter) derived from the base, and where did its weights change?

The one implementation the audit job, the report, the window and `auditdesk inspect`
share, so they apply the same rules. It reads file headers and sampled weights only;
it never runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.models.inspect import ModelCard, inspect_model
from auditdesk.core.models.lineage import LineageVerdict, check_lineage
from auditdesk.core.progress import CancelToken, ProgressReporter


@dataclass
class PairInspection:
    """Both cards, the lineage verdict, and the weight changes (per tensor and per layer)."""

    base_card: ModelCard
    other_card: ModelCard
    verdict: LineageVerdict
    changes: list = field(default_factory=list)  # LayerChange (full model) or AdapterUpdate (adapter)
    note: str = ""  # why there are no weight changes, when there are none

    @property
    def lineage(self) -> dict:
        return self.verdict.to_dict()

    @property
    def weight_change(self) -> dict:
        """{"kind": "full"|"adapter", "layers": [{"layer": "0", "relative_change": x}, ...], "note"?}."""
        kind = "adapter" if self.other_card.is_adapter else "full"
        result: dict = {"kind": kind, "layers": [
            {"layer": "other" if layer is None else str(layer), "relative_change": round(value, 6)}
            for layer, value in self.per_layer()]}
        if self.note:
            result["note"] = self.note
        return result

    def per_layer(self) -> list[tuple[int | None, float]]:
        """One relative change per block: ‖ΔW‖/‖W‖ (full model) or ‖B·A‖/‖W‖ (adapter)."""
        import math

        from auditdesk.core.models.weights import changes_by_layer

        if not self.other_card.is_adapter:
            return changes_by_layer(self.changes)
        sums: dict[int | None, list[float]] = {}
        for update in self.changes:
            if not update.relative_to_base:
                continue
            acc = sums.setdefault(update.layer, [0.0, 0.0])
            acc[0] += update.update_norm ** 2
            acc[1] += (update.update_norm / update.relative_to_base) ** 2
        order = sorted(sums, key=lambda k: (k is None, k if k is not None else 0))
        return [(k, math.sqrt(sums[k][0] / sums[k][1]) if sums[k][1] > 0 else 0.0) for k in order]


def inspect_pair(base: str | ModelCard, other: str | ModelCard, *, scale: float = 1.0, hash_files: bool = True,
                 reporter: ProgressReporter | None = None, cancel: CancelToken | None = None) -> PairInspection:
    """Inspect a base model and a tuned model or LoRA adapter, check lineage, and measure weight changes.

    Weight changes are measured only when the lineage check says they mean
    something: an adapter that fits the base, or a full model plausibly derived from it.
    """
    from auditdesk.core.models.weights import adapter_update_norms, weight_change

    base_card = base if isinstance(base, ModelCard) else inspect_model(base, hash_file=hash_files, reporter=reporter,
                                                                       token=cancel)
    other_card = other if isinstance(other, ModelCard) else inspect_model(other, hash_file=hash_files,
                                                                          reporter=reporter, token=cancel)
    pair = PairInspection(base_card, other_card, check_lineage(base_card, other_card))
    try:
        if other_card.is_adapter and pair.verdict.can_run:
            pair.changes = adapter_update_norms(other_card.path, base_card.path, scale=scale)
        elif not other_card.is_adapter and pair.verdict.plausibly_derived:
            pair.changes = weight_change(base_card.path, other_card.path, reporter=reporter, token=cancel)
        else:
            pair.note = "The weights were not compared: the lineage check says they cannot be."
    except (AuditDeskError, ValueError, OSError) as exc:
        pair.note = str(exc)[:1].upper() + str(exc)[1:]
    return pair
