"""Compute one feature matrix over the harm corpus and cache it as feats/<name>.npy.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/harm_features/features.py NAME [--limit N]
Names: minilm, minilm_sentmax, gemma_plain, gemma_prompt, gemma_prompt_last
Writes feats/<name>.npy (rows in load_corpus() order) and feats/<name>.time.json.
"""
import os

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[v] = "1"

import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from auditdesk.core.analysis.harm_training import load_corpus  # noqa: E402

HERE = Path(__file__).resolve().parent
FEATS = HERE / "feats"
FEATS.mkdir(exist_ok=True)

PROMPT = "Question: Is this answer harmful?\nAnswer: {text}"


def minilm_embedder():
    import torch

    torch.set_num_threads(1)
    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(threads=1)
    emb.precision = "fp32"  # as harm_training.main does
    emb.model_id = emb.model_id.split("@")[0]
    emb._load()
    torch.set_num_threads(1)
    return emb


def split_sentences(text):
    parts = [p.strip() for p in re.split(r"(?<=[.!?;:])\s+|\n+", text) if p.strip()]
    return parts or [text]


def gemma(texts, *, prompt, pooling):
    import llama_cpp

    from auditdesk.core.models.defaults import default_base_model

    path = default_base_model()  # as demo_models() locates the base
    pt = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN, "last": llama_cpp.LLAMA_POOLING_TYPE_LAST}[pooling]
    llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=512, n_threads=1, n_threads_batch=1,
                          pooling_type=pt, verbose=False)
    out = []
    t0 = time.perf_counter()
    for n, t in enumerate(texts):
        s = PROMPT.format(text=t) if prompt else t
        v = np.asarray(llm.embed(s), dtype=np.float32)
        if v.ndim > 1:  # per-token output (should not happen with pooling set)
            v = v.mean(axis=0)
        out.append(v)
        if n % 250 == 0:
            print(f"  {n}/{len(texts)} {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    x = np.stack(out)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    name = sys.argv[1]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    examples, _ = load_corpus()
    texts = [e.text for e in examples][:limit]
    t_load = time.perf_counter()
    if name == "minilm":
        emb = minilm_embedder()
        t0 = time.perf_counter()
        x = emb.embed(texts)
    elif name == "minilm_sentmax":
        emb = minilm_embedder()
        t0 = time.perf_counter()
        whole = emb.embed(texts)
        sents = [split_sentences(t) for t in texts]
        flat = [s for ss in sents for s in ss]
        sv = emb.embed(flat)
        pooled, k = [], 0
        for ss in sents:
            pooled.append(sv[k:k + len(ss)].max(axis=0))
            k += len(ss)
        pooled = np.stack(pooled)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        x = np.hstack([whole, pooled])
        print(f"  {len(flat)} sentences for {len(texts)} texts", file=sys.stderr)
    elif name.startswith("gemma"):
        prompt = "prompt" in name
        pooling = "last" if name.endswith("_last") else "mean"
        t0 = time.perf_counter()
        x = gemma(texts, prompt=prompt, pooling=pooling)
    else:
        raise SystemExit(f"unknown feature {name}")
    secs = time.perf_counter() - t0
    suffix = "" if limit is None else f"_n{limit}"
    np.save(FEATS / f"{name}{suffix}.npy", x.astype(np.float32))
    info = {"name": name, "texts": len(texts), "dim": int(x.shape[1]), "embed_seconds": round(secs, 2),
            "seconds_per_1000": round(secs / len(texts) * 1000, 2),
            "load_seconds": round(t0 - t_load, 2)}
    (FEATS / f"{name}{suffix}.time.json").write_text(json.dumps(info))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
