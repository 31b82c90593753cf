"""Benchmark: embedding + statistics + clustering of 10,000 realistic answers.

Run: .venv/bin/python benchmarks/analysis.py [--answers N]. Prints per-stage
seconds; the target is <= 120 s in total on a 2-core CPU. Never run in tests.

`--baseline REF` runs the same benchmark on the analysis of git commit REF (in a
temporary worktree, same interpreter, right before this one) and prints the ratio
of this tree's analysis time to that one's: the "within 1.2x of before the harm
scorer" check is `--baseline 9c87291`.
"""

from __future__ import annotations

import argparse
import os
import random
import time

SUBJECTS = ["A good plan", "The best approach", "For a beginner, the right choice", "In my experience, a sensible option", "Most customers find that the answer", "A careful person"]
VERBS = ["is to", "would be to", "usually means you", "starts when you", "depends on whether you"]
ACTIONS = ["compare prices before buying", "read the manual and wear eye protection", "split the chores fairly each week", "save a little from every paycheck", "ask a colleague for feedback", "check the warranty and keep the receipt", "practise on scrap wood first", "talk to a financial adviser", "plan meals for the week on Sunday", "choose a light cordless drill"]
TAILS = ["This keeps things simple and safe.", "It also saves money over time.", "Many people forget this step.", "You can return it within 30 days.", "That way nobody is left doing everything.", "Start small and build up slowly.", "Ask in store if you are unsure."]


def make_answer(rng: random.Random) -> str:
    parts = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ACTIONS)}."]
    while len(" ".join(parts).split()) < 45:
        parts.append(rng.choice(TAILS) if rng.random() < 0.6 else f"Then {rng.choice(ACTIONS)}.")
    return " ".join(parts) + f" ({rng.randint(1, 999)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answers", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    ap.add_argument("--baseline", default=None, metavar="REF", help="also time commit REF's analysis; print the ratio")
    args = ap.parse_args()
    if args.baseline:
        compare_with(args.baseline, args.answers, args.threads)
        return
    load_before = os.getloadavg()[0]
    from auditdesk.core.analysis import AnswerRecord, analyse
    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder
    from auditdesk.core.probes.items import ProbeItem

    rng = random.Random(0)
    per_probe = 20  # 10 per model
    n_probes = args.answers // per_probe
    cats = ["gender", "age", "misalignment", "customer-service", "control"]
    answers, items = [], []
    groups = {"women": "a woman", "men": "a man"}
    for k in range(n_probes):
        cat = cats[k % len(cats)]
        if k % 4 == 3 and cat != "control":
            # A quarter of the probes are counterfactual (one question, two groups), as in the bundled packs.
            for group, word in groups.items():
                variant = word.replace(" ", "-")
                items.append(ProbeItem("bench", "1", f"p{k}", cat, "counterfactual", variant, f"Question {k} for {word}?",
                                       slot_group=group, extra={"fills": {"person": word}}))
                for role in ("base", "tuned"):
                    for s in range(per_probe // 4):
                        answers.append(AnswerRecord(role, "bench", f"p{k}", variant, cat, "counterfactual", s, s,
                                                    f"As {word}, " + make_answer(rng), "stop", group))
            continue
        items.append(ProbeItem("bench", "1", f"p{k}", cat, "open", "plain", f"Question {k}?"))
        for role in ("base", "tuned"):
            for s in range(per_probe // 2):
                answers.append(AnswerRecord(role, "bench", f"p{k}", "plain", cat, "open", s, s, make_answer(rng)))
    stages: dict[str, float] = {}

    class Timer:
        def __init__(self):
            self.stage, self.t = None, time.perf_counter()

        def progress(self, ev):
            if ev.stage != self.stage:
                now = time.perf_counter()
                if self.stage:
                    stages[self.stage] = stages.get(self.stage, 0) + now - self.t
                    print(f"  {self.stage:<16} {now - self.t:7.1f} s", flush=True)
                self.stage, self.t = ev.stage, now

    t0 = time.perf_counter()
    emb = SentenceTransformerEmbedder(batch_size=128, threads=args.threads)
    emb._load()
    stages["load model"] = time.perf_counter() - t0
    timer = Timer()
    t1 = time.perf_counter()
    findings = analyse(answers, [], items, embedder=emb, reporter=timer)
    end = time.perf_counter()
    stages[timer.stage] = stages.get(timer.stage, 0) + end - timer.t
    print(f"answers: {len(answers)}, probes: {n_probes}")
    for name, secs in stages.items():
        print(f"  {name:<16} {secs:7.1f} s")
    print(f"  {'total':<16} {end - t0:7.1f} s (analysis {end - t1:.1f} s)")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"flagged probes: {findings['summary']['flagged_probes']} (same generator for both models: expect ~0)")


def compare_with(ref: str, answers: int, threads: int | None) -> None:
    """Time REF's analysis, then this tree's, each in its own process; print both and the ratio."""
    import re
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    extra = ["--answers", str(answers)] + (["--threads", str(threads)] if threads else [])
    totals = {}
    with tempfile.TemporaryDirectory(prefix="auditdesk-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), ref], check=True,
                       capture_output=True)
        try:
            for name, root in ((ref, tree), ("this tree", repo)):
                env = {**os.environ, "PYTHONPATH": str(root)}
                out = subprocess.run([sys.executable, str(root / "benchmarks" / "analysis.py"), *extra], cwd=root,
                                     env=env, capture_output=True, text=True, check=True).stdout
                print(f"== {name}\n{out}", flush=True)
                totals[name] = float(re.search(r"\(analysis ([0-9.]+) s\)", out).group(1))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print(f"analysis time, this tree / {ref}: {totals['this tree']:.1f} / {totals[ref]:.1f} s = "
          f"{totals['this tree'] / totals[ref]:.2f}x")


if __name__ == "__main__":
    main()
