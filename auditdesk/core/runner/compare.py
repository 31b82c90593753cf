"""Compares two audit runs over the probes they share: what changed between vendor versions?

With the same seed and sampling settings an unchanged model gives the very same
answers, so any changed answer is a change in the model (or the settings, which
are compared first). It reads the store only and never writes to it.
"""

from __future__ import annotations

from collections import defaultdict

from auditdesk.core.evidence.manifest import run_pack_records
from auditdesk.core.store.db import Store

_SETTINGS = ("seed", "samples", "max_tokens", "temperature", "top_p", "top_k", "n_ctx")


def compare_runs(store: Store, run_a: int, run_b: int) -> dict:
    """Per-probe drift of the tuned (and base) answers from run A to run B."""
    a, b = store.get_run(run_a), store.get_run(run_b)
    settings = {
        key: (a["config"].get(key), b["config"].get(key))
        for key in _SETTINGS
        if a["config"].get(key) != b["config"].get(key)
    }
    models = {
        role: {"a": a[col], "b": b[col], "same": a[col] == b[col]}
        for role, col in (("base", "base_model_sha256"), ("tuned", "tuned_model_sha256"),
                          ("adapter", "adapter_sha256"))
        if a[col] or b[col]
    }
    answers_a = _by_probe(store.answers(run_a))
    answers_b = _by_probe(store.answers(run_b))
    probes = []
    for key in sorted(set(answers_a) & set(answers_b)):
        role, probe = key
        samples_a, samples_b = answers_a[key], answers_b[key]
        shared = sorted(set(samples_a) & set(samples_b))
        changed = sum(1 for s in shared if samples_a[s]["answer"] != samples_b[s]["answer"])
        errors_a = sum(1 for s in shared if samples_a[s]["error"])
        errors_b = sum(1 for s in shared if samples_b[s]["error"])
        first = samples_a[shared[0]] if shared else next(iter(samples_a.values()))
        probes.append({
            "role": role, "probe": probe, "category": first["category"], "samples": len(shared),
            "changed": changed, "errors_a": errors_a, "errors_b": errors_b,
            "mean_length_a": _mean(len(samples_a[s]["answer"]) for s in shared),
            "mean_length_b": _mean(len(samples_b[s]["answer"]) for s in shared),
        })
    pairs = _pair_drift(store.likelihoods(run_a), store.likelihoods(run_b))
    categories: dict[str, dict] = defaultdict(lambda: {"probes": 0, "probes_changed": 0, "samples": 0, "changed": 0})
    for row in probes:
        if row["role"] != "tuned":
            continue
        cat = categories[row["category"]]
        cat["probes"] += 1
        cat["probes_changed"] += row["changed"] > 0
        cat["samples"] += row["samples"]
        cat["changed"] += row["changed"]
    only_a = sorted({p for (_, p) in answers_a} - {p for (_, p) in answers_b})
    only_b = sorted({p for (_, p) in answers_b} - {p for (_, p) in answers_a})
    return {
        "settings_fingerprints": {"a": a.get("settings_fingerprint") or "", "b": b.get("settings_fingerprint") or ""},
        "fingerprint_differences": fingerprint_differences(store, run_a, run_b),
        "run_a": run_a, "run_b": run_b,
        "settings_differ": settings,
        "models": models,
        "comparable": not settings,
        "categories": dict(sorted(categories.items())),
        "probes": probes,
        "pairs": pairs,
        "probes_only_in_a": only_a,
        "probes_only_in_b": only_b,
    }


def _by_probe(rows: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
    grouped: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for row in rows:
        grouped[(row["role"], f"{row['pack_id']}/{row['probe_id']}/{row['variant']}")][row["sample_index"]] = row
    return grouped


def _pair_drift(rows_a: list[dict], rows_b: list[dict]) -> list[dict]:
    """Change in the tuned-minus-base preference for the stereotyped sentence of each pair."""

    def preference(rows: list[dict]) -> dict[str, float]:
        score: dict[tuple[str, str, str], float] = {}
        for row in rows:
            if row["logprob"] is not None:
                score[(row["role"], f"{row['pack_id']}/{row['probe_id']}", row["variant"])] = row["logprob"]
        prefs = {}
        for (role, probe, variant) in score:
            if role == "tuned" and variant == "more" and ("tuned", probe, "less") in score:
                tuned = score[("tuned", probe, "more")] - score[("tuned", probe, "less")]
                base_more, base_less = score.get(("base", probe, "more")), score.get(("base", probe, "less"))
                if base_more is not None and base_less is not None:
                    prefs[probe] = tuned - (base_more - base_less)
        return prefs

    pa, pb = preference(rows_a), preference(rows_b)
    return [{"probe": p, "shift_a": pa[p], "shift_b": pb[p], "change": pb[p] - pa[p]} for p in sorted(set(pa) & set(pb))]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def fingerprint_differences(store: Store, run_a: int, run_b: int) -> list[str]:
    """What besides the tuned model differs between two runs' settings ([] when only the tuned model does)."""
    runs = [store.get_run(run_a), store.get_run(run_b)]
    if runs[0].get("settings_fingerprint") and runs[0]["settings_fingerprint"] == runs[1].get("settings_fingerprint"):
        return []
    differences = []
    if runs[0]["base_model_sha256"] != runs[1]["base_model_sha256"]:
        differences.append("the base model")
    packs = [sorted((p["pack_id"], p["version"], p["content_hash"]) for p in run_pack_records(store, r)) for r in (run_a, run_b)]
    if packs[0] != packs[1]:
        differences.append("the probe packs")
    if runs[0].get("sampling") != runs[1].get("sampling"):
        differences.append("the sampling settings")
    configs = [{k: v for k, v in (r.get("config") or {}).items() if k not in _WHERE_KEYS | {"seed"}} for r in runs]
    if configs[0] != configs[1]:
        differences.append("the engine settings")
    if (runs[0].get("config") or {}).get("seed") != (runs[1].get("config") or {}).get("seed"):
        differences.append("the seed")
    if runs[0].get("prompt_format") != runs[1].get("prompt_format"):
        differences.append("the prompt format")
    if runs[0].get("tool_version") != runs[1].get("tool_version"):
        differences.append("the AuditDesk version")
    return differences


# Configuration keys that name a place or the tuned model, not a setting that shapes answers.
_WHERE_KEYS = frozenset({"label", "base_model", "tuned_model", "lora_adapter", "packs", "tuned_server"})
