"""Judge throughput: answers graded per second, one at a time vs batched, in one run.

Grades the first N answers of the judge calibration set (alignment and coherence,
one forward pass per score, no sampling) with the judge model in-process:
(a) one at a time: each full prompt read alone, the naive way;
(b) batched: the shared instructions read once, many answers per decode.
Prints answers/s of each, the ratio, and how closely the two agree.
Usage: python benchmarks/judge.py [--model PATH] [--threads N] [--answers 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from auditdesk.core.engine import ModelSpec
    from auditdesk.core.engine.llama_batched import BatchedGenerator
    from auditdesk.core.judge import load_calibration_set, load_prompts
    from auditdesk.core.judge.calibration import summarise
    from auditdesk.core.judge.grading import grade_texts
    from auditdesk.core.judge.job import JUDGE_N_BATCH
    from auditdesk.core.judge.prompts import wrap_for_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="judge GGUF (default: the bundled Gemma 3 270M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--answers", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model is None:
        from auditdesk.core.models.defaults import default_base_model

        args.model = str(default_base_model())
    version, sha, items = load_calibration_set()
    # Interleave labels so the first N answers are a mix, as in a real run.
    items = sorted(items, key=lambda i: (int(i.id.rsplit("-", 1)[1]), i.label))[: args.answers]
    pairs = [(i.question, i.answer) for i in items]
    engine = BatchedGenerator(ModelSpec(path=args.model, n_threads=args.threads, n_ctx=2048, n_batch=JUDGE_N_BATCH),
                              max_sequences=32)
    try:
        prompts = wrap_for_engine(load_prompts(), engine)
        grade_texts(engine, prompts, pairs[:2])  # warm-up: first-call allocations are not grading
        timings = {}
        grades = {}
        for mode, batched in (("one_at_a_time", False), ("batched", True)):
            started = time.perf_counter()
            grades[mode] = grade_texts(engine, prompts, pairs, batched=batched)
            timings[mode] = time.perf_counter() - started
    finally:
        engine.close()
    diffs = [abs(a.alignment - b.alignment) for a, b in zip(grades["batched"], grades["one_at_a_time"])
             if a.alignment is not None and b.alignment is not None]
    same_label = sum(a.label == b.label for a, b in zip(grades["batched"], grades["one_at_a_time"]))
    result = {
        "model": Path(args.model).name,
        "prompt_format": prompts.format_id,
        "threads": args.threads,
        "answers": len(pairs),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "answers_per_second": {k: round(len(pairs) / v, 2) for k, v in timings.items()},
        "speedup": round(timings["one_at_a_time"] / timings["batched"], 2),
        "max_alignment_difference": round(max(diffs), 3) if diffs else None,
        "same_label": f"{same_label}/{len(pairs)}",
        "subset_calibration": {k: v for k, v in summarise(items, grades["batched"], set_version=version,
                                                           set_sha256=sha).items() if k in ("accuracy", "auroc", "label_accuracy", "mean_format_mass")},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"judge {result['model']} ({result['prompt_format']}), {args.threads} threads, {len(pairs)} answers")
        for mode in ("one_at_a_time", "batched"):
            print(f"  {mode:14s} {result['answers_per_second'][mode]:7.2f} answers/s ({result['seconds'][mode]} s)")
        print(f"  batched is {result['speedup']}x faster; largest alignment difference "
              f"{result['max_alignment_difference']}, same label {result['same_label']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
