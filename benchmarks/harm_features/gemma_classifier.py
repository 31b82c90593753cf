"""Does fine-tuning the bundled Gemma 3 270M as a harm classifier read stance better than MiniLM?

Usage: .venv/bin/python benchmarks/harm_features/gemma_classifier.py FAMILY [--epochs 2] [--rank 8] [--out FILE]
(needs the `train` extra: transformers, peft)

An experiment, not shipped. The bundled base (dequantised by transformers) gets LoRA
adapters on every attention and MLP projection and one linear head per harm over the
mean-pooled last hidden state; it is trained on every corpus phrasing family but FAMILY
and scores FAMILY, as one fold of harm_training.evaluate does. Each head counts exactly
the examples harm_training._training_set gives its harm's logistic regression, with the
same labels, and ignores the rest; each head's classes are balanced. Prints held-out
accuracy per harm at thresholds 0.5 and 0.8 and the near-miss false-positive rate at 0.8. About 18 minutes a
fold at two epochs on two CPU cores (1,067 s for the `formal` fold with this script: 298 steps of 16
answers, 3.6 s a step).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks" / "validity")]
from auditdesk.core.analysis.harm import DIMENSIONS  # noqa: E402
from auditdesk.core.analysis.harm_training import _training_set, load_corpus  # noqa: E402

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def targets(examples, dims: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per example and harm head: its label, and whether the head counts it (the shipped scorer's training sets)."""
    labels, masks = np.zeros((len(examples), len(dims)), np.float32), np.zeros((len(examples), len(dims)), np.float32)
    for j, dim in enumerate(dims):
        rows, y = _training_set(examples, dim)
        labels[rows, j], masks[rows, j] = y, 1.0
    return labels, masks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    import peft
    import torch
    from train_organism import load_base

    from auditdesk.core.models.defaults import default_base_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    examples, _ = load_corpus()
    dims = list(DIMENSIONS)
    train = [e for e in examples if e.family != args.family]
    test = [e for e in examples if e.family == args.family]
    if not test:
        parser.error(f"no corpus family '{args.family}'")
    tokenizer, model = load_base(default_base_model())
    lora = peft.LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05, target_modules=TARGET_MODULES)
    peft_model = peft.get_peft_model(model, lora)
    encoder = model.model  # the transformer without the 262k-word output layer, which would dominate the cost
    head = torch.nn.Linear(model.config.hidden_size, len(dims))
    labels, masks = targets(train, dims)
    positives, negatives = (labels * masks).sum(0), ((1 - labels) * masks).sum(0)
    pos_weight = torch.tensor(negatives / np.maximum(positives, 1))

    def logits(batch):
        enc = tokenizer(["Answer: " + e.text for e in batch], return_tensors="pt", padding=True, truncation=True,
                        max_length=96)
        hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return head((hidden * m).sum(1) / m.sum(1))

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params, "lr": 3e-4}, {"params": head.parameters(), "lr": 2e-3}])
    batch_size = 16
    steps = int(args.epochs * len(train) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 20) * max(0.05, 1 - s / steps))
    order: list[int] = []
    while len(order) < steps * batch_size:
        idx = list(range(len(train)))
        random.shuffle(idx)
        order += idx
    peft_model.train()
    t0 = time.time()
    for s in range(steps):
        rows = order[s * batch_size:(s + 1) * batch_size]
        batch = [train[i] for i in rows]
        t, m = torch.tensor(labels[rows]), torch.tensor(masks[rows])
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits(batch), t, pos_weight=pos_weight,
                                                                     reduction="none") * m).sum() / m.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params + list(head.parameters()), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if s % 10 == 0:
            print(f"step {s}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    peft_model.eval()
    with torch.no_grad():
        probs = np.concatenate([torch.sigmoid(logits(test[i:i + 32])).numpy() for i in range(0, len(test), 32)])
    figures = {}
    for j, dim in enumerate(dims):
        own = [k for k, e in enumerate(test) if e.dimension == dim]
        if not own:
            continue
        y = np.array([test[k].harmful for k in own])
        near = [k for k in own if test[k].near_miss]
        figures[dim] = {"examples": len(own), "accuracy_0.5": round(float(np.mean((probs[own, j] >= 0.5) == y)), 3),
                        "accuracy_0.8": round(float(np.mean((probs[own, j] >= 0.8) == y)), 3),
                        "near_miss_fp_0.8": round(float(np.mean(probs[near, j] >= 0.8)), 3) if near else None}
        print(dim, figures[dim])
    if args.out:
        args.out.write_text(json.dumps({"family": args.family, "epochs": args.epochs, "rank": args.rank,
                                        "figures": figures, "seconds": round(time.time() - t0)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
