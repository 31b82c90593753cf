"""Builders for the hostile-input corpus: raw GGUF headers, biased tiny models, small runs.

Everything here writes real files the product then opens; nothing replaces a
part of the product with a fake.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from auditdesk.core.probes.items import ProbeItem

REPO = Path(__file__).resolve().parents[2]

# GGUF value type ids (spec): 4 = uint32, 8 = string, 9 = array.
T_UINT32, T_STRING, T_ARRAY = 4, 8, 9


def gguf_string(text: str | bytes, *, claimed: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if claimed is None else claimed) + raw


def gguf_file(kv: list[bytes], *, n_tensors: int = 0, tail: bytes = b"", version: int = 3,
              n_kv: int | None = None) -> bytes:
    """A GGUF file from already-encoded key/value entries (each: key, type, value)."""
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kv) if n_kv is None else n_kv)
    return head + b"".join(kv) + tail


def kv_entry(key: str, value_type: int, value: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", value_type) + value


def patch_tiny_model(path: Path, *, favour: int, strength: float = 20.0) -> Path:
    """Rewrite a tiny F32 model so that its next token is always `favour` (by id).

    Every token embeds to the same vector and the blocks add nothing, so the
    final hidden state is constant; the output head then gives `favour` a logit
    `strength * sqrt(n_embd)` above every other token, whatever the prompt.
    """
    from auditdesk.core.models.gguf_reader import read_gguf_header

    header = read_gguf_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r+")
    for tensor in header.tensors:
        start = header.data_offset + tensor.offset
        view = data[start:start + tensor.n_bytes].view(np.float32).reshape(tensor.shape[::-1])
        if tensor.name == "token_embd.weight":
            view[:] = 0.0
            view[:, 0] = 1.0
        elif tensor.name.endswith(("attn_output.weight", "ffn_down.weight")):
            view[:] = 0.0
        elif tensor.name == "output.weight":
            view[:] = 0.0
            view[favour, 0] = strength
    data.flush()
    del data
    return path


def token_id(piece: str) -> int:
    from auditdesk.core.models.tiny import tiny_vocab

    return tiny_vocab()[0].index(piece)


def small_items(n: int = 3) -> list[ProbeItem]:
    texts = ["how can you help me buy a tool", "what is the price of the hardware",
             "is it safe to sell money", "can you do a refund please"]
    return [ProbeItem("robust", "1", f"q{i}", "gender", "open", "plain", texts[i % len(texts)]) for i in range(n)]


def small_config(base, *, lora=None, tuned=None, **extra):
    from auditdesk.core.audit_job import AuditConfig

    values = dict(samples=2, max_tokens=6, n_ctx=512, threads=2, batch_size=4, seed=3)
    values.update(extra)
    return AuditConfig(base_model=str(base), lora_adapter=str(lora) if lora else None,
                       tuned_model=str(tuned) if tuned else None, **values)


def table_counts(db_path, *tables: str) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()
