"""Reuse of stored answers: an answer already generated under the same key is copied, not generated again.

A unit's reuse key hashes everything its answer depends on: the model file's
SHA-256 (with the adapter's and the LoRA scale), the exact prompt, every sampling
and engine setting, the seed and sample index, and the batch it is generated in
(the batched engine's schedule depends on the whole request list). It must never
give a key to a model on a server (its weights cannot be hashed and may be swapped
behind the same name), and never reuse an answer cut by the time limit or failed.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Sequence

from auditdesk.core.runner.plan import PlannedUnit

KEY_VERSION = 1


def model_identity(role: str, hashes: dict[str, str], *, lora_scale: float, server: str | None) -> str | None:
    """What the answers of `role` come from: model SHA-256 (plus adapter SHA and scale); None on a server."""
    if server:
        return None
    if role == "base":
        return hashes["base"]
    if hashes.get("adapter"):
        return f"{hashes['base']}+{hashes['adapter']}@{float(lora_scale)!r}"
    return hashes.get("tuned")


def batch_digest(units: Sequence[PlannedUnit]) -> str:
    """Hash of one batch's request list (prompt, seed, kind per unit, in order)."""
    digest = hashlib.sha256()
    for unit in units:
        digest.update(json.dumps([unit.unit_type, unit.prompt, unit.seed], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def reuse_keys(units: Sequence[PlannedUnit], *, identities: dict[str, str | None], settings: dict) -> dict[str, str]:
    """unit_key -> reuse key for every unit whose model can be identified by its weights.

    `settings`: every sampling and engine setting that shapes an answer (the caller
    gathers them; anything left out here would let a different answer be reused).
    """
    batches: dict[int, list[PlannedUnit]] = defaultdict(list)
    for unit in units:
        batches[unit.batch_no].append(unit)
    digests = {no: batch_digest(batch) for no, batch in batches.items()}
    canonical_settings = json.dumps(settings, sort_keys=True, ensure_ascii=False)
    keys = {}
    for unit in units:
        identity = identities.get(unit.role)
        if not identity:
            continue
        material = json.dumps({
            "v": KEY_VERSION, "model": identity, "type": unit.unit_type, "prompt": unit.prompt,
            "seed": unit.seed, "sample": unit.sample_index, "settings": canonical_settings,
            "batch": digests[unit.batch_no]}, sort_keys=True, ensure_ascii=False)
        keys[unit.unit_key] = hashlib.sha256(material.encode("utf-8")).hexdigest()
    return keys


def reusable_rows(store, units: Sequence[dict]) -> dict[int, dict]:
    """unit id -> a stored answer (or likelihood) row made under the same key, in any run of the database.

    The same run counts too (the base model audited against itself answers each
    question once). Only complete answers qualify: no error, not cut by the time
    limit (that cut depends on the machine's speed, not on the key).
    """
    keyed = {u["reuse_key"]: u for u in units if u.get("reuse_key") and u["status"] == "pending"}
    if not keyed:
        return {}
    table = "likelihoods" if next(iter(keyed.values()))["unit_type"] == "likelihood" else "answers"
    extra = " AND x.logprob IS NOT NULL" if table == "likelihoods" else " AND x.finish_reason != 'time'"
    found: dict[int, dict] = {}
    keys = list(keyed)
    for start in range(0, len(keys), 500):  # SQLite's parameter limit
        chunk = keys[start:start + 500]
        rows = store.query(
            f"SELECT u.reuse_key AS reuse_key, x.* FROM units u JOIN {table} x ON x.unit_id = u.id "
            f"WHERE u.reuse_key IN ({', '.join('?' for _ in chunk)}) AND x.error IS NULL{extra} "
            "ORDER BY x.id", tuple(chunk))
        for row in rows:
            unit = keyed[row["reuse_key"]]
            found.setdefault(unit["id"], row)
    return found
