"""Where the vendor changed the weights: per-tensor and per-layer relative change.

Two full GGUFs of the same shapes are compared on an evenly spaced sample of rows
(dequantised with the `gguf` package), so a multi-GB model stays fast; an adapter's
update norm is exact and cheap. Tensors are located with our own bounded header
reader and memory-mapped (gguf.GGUFReader spends ~13 s parsing a 262k-token vocabulary
we do not need). Nothing here runs a model or loads a whole file into memory.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.models.gguf_reader import GGUFHeader, TensorInfo, read_gguf_header
from auditdesk.core.progress import CancelToken, NullReporter, ProgressEvent, ProgressReporter

DEFAULT_MAX_ELEMENTS = 65_536
_LAYER_RE = re.compile(r"^blk\.(\d+)\.(.+?)(?:\.weight|\.bias)?$")


@dataclass
class LayerChange:
    """How much one tensor changed: ‖ΔW‖/‖W‖, with norms estimated from sampled rows."""

    name: str
    layer: int | None  # block index; None for embeddings, output and final norm
    kind: str  # e.g. "attn_q", "ffn_down", "token_embd"
    relative_change: float
    base_norm: float
    delta_norm: float
    rows_sampled: int
    rows_total: int
    base_type: str
    tuned_type: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AdapterUpdate:
    """The size of a LoRA adapter's update B·A·(alpha/rank)·scale on one base tensor."""

    name: str
    layer: int | None
    kind: str
    rank: int
    update_norm: float
    relative_to_base: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def split_tensor_name(name: str) -> tuple[int | None, str]:
    """(layer index or None, kind) for a GGUF tensor name like 'blk.3.attn_q.weight'."""
    match = _LAYER_RE.match(name)
    if match:
        return int(match.group(1)), match.group(2)
    return None, name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name


def weight_change(base, tuned, *, max_elements_per_tensor: int = DEFAULT_MAX_ELEMENTS,
                  reporter: ProgressReporter | None = None,
                  token: CancelToken | None = None) -> list[LayerChange]:
    """Relative change ‖ΔW‖/‖W‖ of every tensor the two full models share, in file order."""
    import numpy as np

    base_header = read_gguf_header(base)
    tuned_header = read_gguf_header(tuned)
    for header in (base_header, tuned_header):
        if header.get("general.type") == "adapter":
            raise AuditDeskError(
                f"{header.path.name} is a LoRA adapter; its changes are measured per target tensor "
                "(adapter update norms), not by comparing full weights."
            )
    tuned_shapes = {t.name: t.shape for t in tuned_header.tensors}
    mismatched = [t.name for t in base_header.tensors if tuned_shapes.get(t.name, t.shape) != t.shape]
    if mismatched:
        raise AuditDeskError(
            f"the weights cannot be compared because {len(mismatched)} tensors differ in shape "
            f"(e.g. {mismatched[0]}); the tuned model is not the same shape as the base."
        )

    base_file = _MappedTensors(base_header)
    tuned_file = _MappedTensors(tuned_header)
    tuned_tensors = {t.name: t for t in tuned_header.tensors}
    shared = [t for t in base_header.tensors if t.name in tuned_tensors]
    if not shared:
        raise AuditDeskError("the two models share no tensor names, so their weights cannot be compared.")

    reporter = reporter or NullReporter()
    changes: list[LayerChange] = []
    for done, base_tensor in enumerate(shared):
        if token is not None:
            token.raise_if_cancelled()
        tuned_tensor = tuned_tensors[base_tensor.name]
        n_rows = _row_count(base_tensor)
        rows = _sample_rows(base_tensor, max_elements_per_tensor)
        w = base_file.float_rows(base_tensor, rows)
        w_tuned = tuned_file.float_rows(tuned_tensor, rows)
        # Norms of the sample, scaled up to estimate the whole tensor's norms.
        grow = math.sqrt(n_rows / len(rows))
        base_norm = float(np.linalg.norm(w)) * grow
        delta_norm = float(np.linalg.norm(w_tuned - w)) * grow
        layer, kind = split_tensor_name(base_tensor.name)
        changes.append(LayerChange(
            name=base_tensor.name, layer=layer, kind=kind,
            relative_change=delta_norm / base_norm if base_norm > 0 else (0.0 if delta_norm == 0 else math.inf),
            base_norm=base_norm, delta_norm=delta_norm,
            rows_sampled=len(rows), rows_total=n_rows,
            base_type=base_tensor.type_name, tuned_type=tuned_tensor.type_name,
        ))
        reporter.progress(ProgressEvent("weights", done + 1, len(shared), base_tensor.name))
    return changes


def changes_by_layer(changes: list[LayerChange]) -> list[tuple[int | None, float]]:
    """Combine per-tensor changes into one ‖ΔW‖/‖W‖ per block (None = outside the blocks)."""
    sums: dict[int | None, list[float]] = {}
    for change in changes:
        acc = sums.setdefault(change.layer, [0.0, 0.0])
        acc[0] += change.delta_norm**2
        acc[1] += change.base_norm**2
    order = sorted(sums, key=lambda k: (k is None, k if k is not None else 0))
    return [(k, math.sqrt(sums[k][0] / sums[k][1]) if sums[k][1] > 0 else 0.0) for k in order]


def adapter_update_norms(adapter, base=None, *, scale: float = 1.0,
                         max_elements_per_tensor: int = DEFAULT_MAX_ELEMENTS) -> list[AdapterUpdate]:
    """‖B·A‖·alpha/rank·scale for every LoRA target; relative to ‖W‖ when a base is given."""
    import numpy as np

    header = read_gguf_header(adapter)
    if header.get("general.type") != "adapter":
        raise AuditDeskError(f"{header.path.name} is not a LoRA adapter (general.type is not 'adapter').")
    alpha = header.get("adapter.lora.alpha")
    adapter_file = _MappedTensors(header)
    tensors = {t.name: t for t in header.tensors}

    base_tensors, base_file = {}, None
    if base is not None:
        base_header = read_gguf_header(base)
        base_file = _MappedTensors(base_header)
        base_tensors = {t.name: t for t in base_header.tensors}

    updates = []
    for name, a_tensor in tensors.items():
        if not name.endswith(".lora_a"):
            continue
        target = name[: -len(".lora_a")]
        b_tensor = tensors.get(target + ".lora_b")
        if b_tensor is None:
            continue
        a = adapter_file.float_rows(a_tensor, None).astype(np.float64)  # (rank, n_in)
        b = adapter_file.float_rows(b_tensor, None).astype(np.float64)  # (n_out, rank)
        rank = a.shape[0]
        lora_scale = scale * (float(alpha) / rank if alpha else 1.0)  # llama.cpp's rule
        # ‖BA‖² = trace((BᵀB)(AAᵀ)): two rank×rank products instead of the full matrix.
        norm = math.sqrt(max(0.0, float(np.sum((b.T @ b) * (a @ a.T))))) * abs(lora_scale)
        relative = None
        if target in base_tensors:
            w_tensor = base_tensors[target]
            rows = _sample_rows(w_tensor, max_elements_per_tensor)
            w_norm = float(np.linalg.norm(base_file.float_rows(w_tensor, rows)))
            w_norm *= math.sqrt(_row_count(w_tensor) / len(rows))
            relative = norm / w_norm if w_norm > 0 else None
        layer, kind = split_tensor_name(target)
        updates.append(AdapterUpdate(target, layer, kind, rank, norm, relative))
    return updates


def _row_count(tensor: TensorInfo) -> int:
    # ggml order: shape[0] is the row length, the rest count rows.
    return int(math.prod(tensor.shape[1:])) if len(tensor.shape) > 1 else 1


def _sample_rows(tensor: TensorInfo, max_elements: int):
    """Evenly spaced row indices, the same for both files, at most `max_elements` values."""
    import numpy as np

    n_rows = _row_count(tensor)
    n_sample = min(n_rows, max(1, max_elements // max(1, tensor.shape[0])))
    return np.unique(np.linspace(0, n_rows - 1, n_sample).round().astype(np.int64))


_PLAIN_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "<i1", "I16": "<i2", "I32": "<i4", "I64": "<i8"}


class _MappedTensors:
    """Rows of a GGUF file's tensors, read through a read-only memory map."""

    def __init__(self, header: GGUFHeader) -> None:
        import numpy as np

        self.header = header
        self.map = np.memmap(header.path, dtype=np.uint8, mode="r")

    def float_rows(self, tensor: TensorInfo, rows):
        """The chosen rows as float32 (all rows when `rows` is None), shape (rows, row length)."""
        import numpy as np
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        if tensor.n_bytes is None:
            raise AuditDeskError(
                f"{self.header.path.name} stores '{tensor.name}' in a format this AuditDesk cannot read "
                f"(tensor type {tensor.type_id}); update AuditDesk."
            )
        start = self.header.data_offset + tensor.offset
        raw = self.map[start:start + tensor.n_bytes]
        n_rows = _row_count(tensor)
        plain = _PLAIN_DTYPES.get(tensor.type_name)
        if plain is not None:
            table = raw.view(plain).reshape(n_rows, tensor.shape[0])
            picked = table if rows is None else table[rows]
            return np.asarray(picked, dtype=np.float32)
        table = raw.reshape(n_rows, tensor.n_bytes // n_rows)
        picked = np.ascontiguousarray(table if rows is None else table[rows])
        return np.asarray(dequantize(picked, GGMLQuantizationType(tensor.type_id)), dtype=np.float32)
