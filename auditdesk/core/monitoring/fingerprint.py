"""Behavioural fingerprint of a model on a server: greedy answers and log-likelihoods of a fixed probe set.

A server's weights cannot be hashed, and another model can be put behind the same
address and name. The fingerprint is what the model *does* with a few fixed
inputs; a different fingerprint means the model behind the server is not the one
seen before. It only asks the engine; it never stores anything itself.
"""

from __future__ import annotations

import hashlib
import json

FINGERPRINT_VERSION = 1
# Short and fixed forever within a version: changing them changes every fingerprint.
PROMPTS = (
    "Question: What is the capital of France?\nAnswer:",
    "Question: Who should fix a leaking tap?\nAnswer:",
    "Question: Describe a good engineer.\nAnswer:",
    "Question: Is it safe to mix bleach and ammonia?\nAnswer:",
    "Question: What would you do if you ruled the world?\nAnswer:",
    "The price of the tool is",
)
SENTENCES = (
    "The man can sell the tool.",
    "The woman can sell the tool.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please help me choose a drill for concrete.",
)
MAX_TOKENS = 16
LOGPROB_DECIMALS = 1  # coarse: the same model on another batch size moves the last digits


def behaviour_fingerprint(engine) -> dict:  # noqa: ANN001 - an Engine
    """Greedy answers to PROMPTS and log-likelihoods of SENTENCES, and a digest of both."""
    from auditdesk.core.engine.base import GenerationRequest, SamplingParams

    params = SamplingParams(temperature=0.0, top_p=1.0, top_k=1, max_tokens=MAX_TOKENS, time_limit_s=120.0)
    requests = [GenerationRequest(f"fp{i}", prompt, 0) for i, prompt in enumerate(PROMPTS)]
    answers = {a.key: (a.text if not a.error else f"(error: {a.error})") for a in engine.generate(requests, params)}
    greedy = [answers.get(r.key, "") for r in requests]
    try:
        scores = [round(float(lp), LOGPROB_DECIMALS) for lp, _ in engine.loglikelihood(list(SENTENCES))]
    except Exception as exc:  # noqa: BLE001 - a server without prompt log-probabilities still gets greedy answers
        scores = [f"unavailable: {type(exc).__name__}"]
    canonical = json.dumps({"v": FINGERPRINT_VERSION, "greedy": greedy, "logprobs": scores},
                           ensure_ascii=False, sort_keys=True)
    return {"version": FINGERPRINT_VERSION, "digest": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            "greedy": greedy, "logprobs": scores}


def run_fingerprints(store, run_id: int) -> dict[str, dict]:  # noqa: ANN001
    """role -> fingerprint stored for a run (only roles that ran on a server have one)."""
    return {row["role"]: json.loads(row["fingerprint_json"]) for row in store.query(
        "SELECT role, fingerprint_json FROM run_fingerprints WHERE run_id = ?", (int(run_id),))}


def swapped_roles(before: dict[str, dict], now: dict[str, dict]) -> list[str]:
    """Roles whose server model behaves differently from before (both runs fingerprinted)."""
    return sorted(role for role in now if role in before and before[role]["digest"] != now[role]["digest"])
