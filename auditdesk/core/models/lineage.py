"""Is the tuned model (or adapter) plausibly made from the chosen base? Said in plain words.

Compares headers only: architecture, tensor names and shapes, tokenizer fingerprint,
chat template. It never claims proof of lineage, and never refuses an audit of two
full models: a mismatch is a warning for the report, not a reason to stop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from auditdesk.core.models.inspect import ModelCard, inspect_model

SEVERITY_ORDER = {"ok": 0, "info": 0, "warn": 1, "strong": 2}
_EXAMPLES = 3


@dataclass
class LineageDifference:
    """One thing that differs between base and tuned; severity is info, warn or strong."""

    what: str
    severity: str
    detail: str


@dataclass
class LineageVerdict:
    """The lineage check's answer: a sentence, a severity (ok/warn/strong) and the evidence."""

    verdict: str
    severity: str
    plausibly_derived: bool
    can_run: bool
    differences: list[LineageDifference] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_lineage(base: ModelCard | str | Path, tuned: ModelCard | str | Path) -> LineageVerdict:
    """Check whether `tuned` (a full GGUF or a LoRA adapter) is plausibly derived from `base`."""
    base_card = base if isinstance(base, ModelCard) else inspect_model(base, hash_file=False)
    tuned_card = tuned if isinstance(tuned, ModelCard) else inspect_model(tuned, hash_file=False)
    if base_card.is_adapter:
        diff = LineageDifference(
            "base", "strong", f"{base_card.file_name} is a LoRA adapter, not a full base model"
        )
        return LineageVerdict(
            f"The file chosen as the base ({base_card.file_name}) is a LoRA adapter; choose the full "
            "base model instead.",
            "strong", False, False, [diff],
        )
    if tuned_card.is_adapter:
        return _check_adapter(base_card, tuned_card)
    return _check_full(base_card, tuned_card)


def _check_full(base: ModelCard, tuned: ModelCard) -> LineageVerdict:
    diffs: list[LineageDifference] = []
    matched: list[str] = []

    if base.architecture != tuned.architecture:
        diffs.append(LineageDifference(
            "architecture", "strong",
            f"the base is {base.architecture or 'unnamed'}, the tuned model is {tuned.architecture or 'unnamed'}",
        ))
    else:
        matched.append(f"architecture ({base.architecture})")

    tensor_diffs = _tensor_differences(base, tuned)
    diffs += tensor_diffs
    if not tensor_diffs:
        matched.append(f"tensor names and shapes ({base.tensor_count} tensors)")

    if base.tokenizer_fingerprint is None or tuned.tokenizer_fingerprint is None:
        missing = base.file_name if base.tokenizer_fingerprint is None else tuned.file_name
        diffs.append(LineageDifference("tokenizer", "warn", f"{missing} has no token list, so tokenizers cannot be compared"))
    elif base.tokenizer_fingerprint != tuned.tokenizer_fingerprint:
        diffs.append(LineageDifference(
            "tokenizer", "strong",
            f"the tokenizers differ (vocabulary {base.vocab_size} vs {tuned.vocab_size} tokens, "
            f"fingerprints {base.tokenizer_fingerprint[:12]} vs {tuned.tokenizer_fingerprint[:12]})",
        ))
    else:
        matched.append(f"tokenizer ({base.vocab_size} tokens, fingerprint {base.tokenizer_fingerprint[:12]})")

    if base.chat_template_sha256 != tuned.chat_template_sha256:
        if not base.chat_template_present or not tuned.chat_template_present:
            which = "the tuned model" if tuned.chat_template_present else "the base"
            detail = f"only {which} has a chat template"
        else:
            detail = "the chat templates differ"
        diffs.append(LineageDifference("chat template", "warn", detail))
    else:
        matched.append("chat template" if base.chat_template_present else "no chat template in either")

    if base.quantisation != tuned.quantisation:
        diffs.append(LineageDifference(
            "quantisation", "info", f"{base.quantisation} in the base, {tuned.quantisation} in the tuned model",
        ))
    if base.context_length != tuned.context_length:
        diffs.append(LineageDifference(
            "context length", "info", f"{base.context_length} in the base, {tuned.context_length} in the tuned model",
        ))
    if base.sha256 and base.sha256 == tuned.sha256:
        diffs.append(LineageDifference(
            "weights", "warn", "the two files are byte-for-byte identical, so nothing was fine-tuned",
        ))

    severity = _worst(diffs)
    strong = [d for d in diffs if d.severity == "strong"]
    warn = [d for d in diffs if d.severity == "warn"]
    if strong:
        verdict = (
            "Probably not derived from this base: " + "; ".join(d.detail for d in strong) + ". "
            "The audit can still run, but differences may come from a different model rather than from fine-tuning."
        )
    elif warn:
        verdict = "Plausibly derived from this base, but " + "; ".join(d.detail for d in warn) + "."
    else:
        verdict = "Plausibly derived from this base: same architecture, tensor names and shapes, and tokenizer."
    return LineageVerdict(verdict, severity, not strong, True, diffs, matched)


def _check_adapter(base: ModelCard, adapter: ModelCard) -> LineageVerdict:
    diffs: list[LineageDifference] = []
    matched: list[str] = []
    if base.architecture != adapter.architecture:
        diffs.append(LineageDifference(
            "architecture", "strong",
            f"the adapter is for {adapter.architecture or 'an unnamed architecture'}, the base is {base.architecture or 'unnamed'}",
        ))
    else:
        matched.append(f"architecture ({base.architecture})")

    base_shapes = {t.name: t.shape for t in base.tensors}
    adapter_shapes = {t.name: t.shape for t in adapter.tensors}
    missing, wrong, unpaired = [], [], []
    for target in adapter.adapter_targets:
        a = adapter_shapes.get(f"{target}.lora_a")
        b = adapter_shapes.get(f"{target}.lora_b")
        if a is None or b is None:
            unpaired.append(target)
            continue
        if target not in base_shapes:
            missing.append(target)
            continue
        w = base_shapes[target]
        # ggml order: W [n_in, n_out], A [n_in, rank], B [rank, n_out].
        if len(a) < 2 or len(b) < 2 or len(w) < 2 or a[0] != w[0] or b[1] != w[1] or a[1] != b[0]:
            wrong.append(f"{target} (base {_shape(w)}, adapter A {_shape(a)} B {_shape(b)})")
    orphans = [n for n in adapter_shapes if n.endswith(".lora_b") and n[:-7] not in adapter.adapter_targets]
    unpaired += [n[:-7] for n in orphans]

    if not adapter.adapter_targets:
        diffs.append(LineageDifference("adapter tensors", "strong", "the adapter contains no LoRA tensors"))
    if missing:
        diffs.append(LineageDifference(
            "target tensors", "strong",
            f"{len(missing)} of the adapter's {len(adapter.adapter_targets)} target tensors do not exist in the base "
            f"(e.g. {', '.join(missing[:_EXAMPLES])})",
        ))
    if wrong:
        diffs.append(LineageDifference(
            "target shapes", "strong",
            f"{len(wrong)} target tensors have shapes that do not fit the base (e.g. {'; '.join(wrong[:_EXAMPLES])})",
        ))
    if unpaired:
        diffs.append(LineageDifference(
            "adapter tensors", "strong",
            f"{len(unpaired)} LoRA tensors lack their A or B half (e.g. {', '.join(unpaired[:_EXAMPLES])})",
        ))
    if adapter.adapter_type not in (None, "lora"):
        diffs.append(LineageDifference("adapter type", "strong", f"the adapter type is '{adapter.adapter_type}', not 'lora'"))

    strong = [d for d in diffs if d.severity == "strong"]
    if strong:
        verdict = (
            "This adapter does not fit this base: " + "; ".join(d.detail for d in strong) + ". "
            "The audit cannot run with this pair; choose the base model the adapter was made for."
        )
        return LineageVerdict(verdict, "strong", False, False, diffs, matched)
    n = len(adapter.adapter_targets)
    matched.append(f"all {n} target tensors exist in the base with matching shapes (rank {adapter.adapter_rank})")
    verdict = (
        f"Plausibly made for this base: same architecture ({base.architecture}) and all {n} target "
        "tensors exist in the base with matching shapes."
    )
    return LineageVerdict(verdict, _worst(diffs), True, True, diffs, matched)


def _tensor_differences(base: ModelCard, tuned: ModelCard) -> list[LineageDifference]:
    base_shapes = {t.name: t.shape for t in base.tensors}
    tuned_shapes = {t.name: t.shape for t in tuned.tensors}
    only_base = [n for n in base_shapes if n not in tuned_shapes]
    only_tuned = [n for n in tuned_shapes if n not in base_shapes]
    reshaped = [
        f"{n}: {_shape(base_shapes[n])} vs {_shape(tuned_shapes[n])}"
        for n in base_shapes if n in tuned_shapes and base_shapes[n] != tuned_shapes[n]
    ]
    diffs = []
    if only_base:
        diffs.append(LineageDifference(
            "tensors", "strong",
            f"{len(only_base)} base tensors are missing from the tuned model (e.g. {', '.join(only_base[:_EXAMPLES])})",
        ))
    if only_tuned:
        diffs.append(LineageDifference(
            "tensors", "strong",
            f"the tuned model has {len(only_tuned)} tensors the base lacks (e.g. {', '.join(only_tuned[:_EXAMPLES])})",
        ))
    if reshaped:
        diffs.append(LineageDifference(
            "tensor shapes", "strong",
            f"{len(reshaped)} tensors differ in shape (e.g. {'; '.join(reshaped[:_EXAMPLES])})",
        ))
    return diffs


def _worst(diffs: list[LineageDifference]) -> str:
    worst = max((SEVERITY_ORDER[d.severity] for d in diffs), default=0)
    return {0: "ok", 1: "warn", 2: "strong"}[worst]


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)
