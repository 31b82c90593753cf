"""How much storing answers costs next to generating them (target: under 5%).

Runs a small real audit (the bundled 270M model and the demo adapter by default,
or the tiny test model with --tiny) and prints the runner's own split of time:
waiting for the engine versus writing answers (one fsync'd transaction each).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="use the tiny test model instead of the 270M model")
    parser.add_argument("--probes", type=int, default=6)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--backend", default="llama-worker")
    args = parser.parse_args()

    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import resolve_pack
    from auditdesk.core.audit_job import AuditConfig, execute, plan_run
    from auditdesk.core.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="auditdesk-bench-"))
    if args.tiny:
        from auditdesk.core.models.tiny import write_tiny_lora, write_tiny_model

        base = write_tiny_model(tmp / "tiny.gguf")
        adapter = write_tiny_lora(tmp / "tiny-lora.gguf", base)
    else:
        from auditdesk.core.models.defaults import demo_models

        models = demo_models()
        base, adapter = models.base, models.adapter
    items = [i for i in expand(resolve_pack("quick")) if i.scored_by == "generation"][: args.probes]
    config = AuditConfig(base_model=str(base), lora_adapter=str(adapter), samples=args.samples,
                         max_tokens=args.max_tokens, threads=2, n_ctx=1024, backend=args.backend)
    with open_store(tmp / "bench.db") as store:
        run_id = plan_run(config, store, items=items)
        t0 = time.monotonic()
        stats = execute(store, run_id)
        wall = time.monotonic() - t0
        per_answer_ms = 1000 * stats.store_seconds / max(1, stats.units_stored)
    print(f"model: {Path(base).name} + {Path(adapter).name}; backend {args.backend}")
    print(f"answers stored: {stats.units_stored}; completion tokens: {stats.completion_tokens}; wall {wall:.1f}s")
    print(f"generation: {stats.generate_seconds:.2f}s; model loading: {stats.load_seconds:.2f}s")
    print(f"storing: {stats.store_seconds:.3f}s ({per_answer_ms:.2f} ms per answer, synchronous=FULL)")
    print(f"storing / generation: {100 * stats.store_overhead:.2f}%")


if __name__ == "__main__":
    main()
