"""Benchmark: inspecting a model before an audit (header, hash, lineage, weight change).

Prints each step's time on the bundled Gemma 3 270M and the demo adapter, plus the
ratio to gguf.GGUFReader's own header parse (the reason we read headers ourselves).
Run: `python benchmarks/model_inspection.py [--base BASE.gguf] [--adapter ADAPTER.gguf]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _timed(label: str, func):
    start = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - start
    print(f"{label:<48}{elapsed:8.3f} s")
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, help="base GGUF (default: the bundled Gemma 3 270M)")
    parser.add_argument("--adapter", type=Path, help="adapter GGUF (default: the demo adapter)")
    args = parser.parse_args()
    os.environ.setdefault("AUDITDESK_HOME", tempfile.mkdtemp(prefix="auditdesk-bench-"))

    from auditdesk.core.models.gguf_reader import read_gguf_header
    from auditdesk.core.models.inspect import file_sha256, inspect_model
    from auditdesk.core.models.lineage import check_lineage
    from auditdesk.core.models.weights import adapter_update_norms, weight_change
    from auditdesk.core.paths import resource_path

    base = args.base
    if base is None:
        from auditdesk.core.models.defaults import default_base_model

        base = default_base_model()
    adapter = args.adapter or resource_path("demo", "demo-hardware-store.lora.gguf")
    print(f"base: {base} ({base.stat().st_size / 2**20:.0f} MiB)")

    _, ours = _timed("header (auditdesk reader)", lambda: read_gguf_header(base))
    from gguf import GGUFReader

    _, theirs = _timed("header + tensor views (gguf.GGUFReader)", lambda: GGUFReader(str(base)))
    _timed("SHA-256, first time", lambda: file_sha256(base))
    _timed("SHA-256, cached", lambda: file_sha256(base))
    card, _ = _timed("inspect_model (cached hash)", lambda: inspect_model(base))
    _timed("check_lineage (base, adapter)", lambda: check_lineage(card, adapter))
    _timed("adapter_update_norms (with base)", lambda: adapter_update_norms(adapter, base))
    _timed("weight_change (base vs itself, sampled)", lambda: weight_change(base, base))
    print(f"gguf.GGUFReader / auditdesk reader: {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
