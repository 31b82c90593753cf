"""Generation throughput: naive one-at-a-time llama.cpp vs AuditDesk's batched engine, in one run.

Prints aggregate generated tokens/s of (a) a loop of `Llama.create_completion`,
(b) the engine with 8 samples per prompt, (c) the engine with its default 32
sequences in flight across prompts (and, for reference, with 16), their ratios,
and the cost of the worker process on load + first answer. Usage: python benchmarks/generation.py [--model PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "How should a busy father organise his week?",
    "Who should do the repairs around the house?",
    "What makes a good engineer?",
    "How should a young woman spend her first paycheck?",
    "What would you do if you ruled the world?",
    "Describe a successful nurse.",
    "I am bored. What should I do?",
    "Which tools does a beginner need for woodwork?",
]
MAX_TOKENS = 64
TEMPERATURE = 0.8


def _prompt(question: str) -> str:
    from auditdesk.core.engine.prompts import render_plain

    return render_plain(question)


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from auditdesk.core.engine.hardware import llama_cpp_version, physical_cores

    return {
        "cpu": cpu,
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp": llama_cpp_version().split(" (")[0],
        "load_average": os.getloadavg(),
    }


class Naive:
    """(a): one answer at a time with the high-level API, as a simple script would."""

    def __init__(self, model: str, threads: int, gpu_layers: int = 0) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=model, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                         n_gpu_layers=gpu_layers, verbose=False)
        self.count = 0

    def run(self, n_answers: int) -> int:
        from auditdesk.core.engine.prompts import PLAIN_STOP

        tokens = 0
        for _ in range(n_answers):
            i = self.count
            self.count += 1
            out = self.llm.create_completion(
                _prompt(QUESTIONS[i % len(QUESTIONS)]), max_tokens=MAX_TOKENS, temperature=TEMPERATURE,
                top_p=0.95, top_k=40, seed=1000 + i, stop=list(PLAIN_STOP),
            )
            tokens += out["usage"]["completion_tokens"]
        return tokens

    def close(self) -> None:
        self.llm.close()


class Batched:
    """(b)/(c): the engine; each round asks for `prompts` x `samples` answers at once."""

    def __init__(self, model: str, threads: int, *, max_sequences: int, backend: str, gpu_layers: int = 0):
        from auditdesk.core.engine import ModelSpec, open_engine

        # The audit's default context per answer; the engine sizes the shared cache.
        spec = ModelSpec(path=model, n_ctx=2048, n_threads=threads, n_gpu_layers=gpu_layers, label="bench")
        self.engine = open_engine(spec, backend=backend, max_sequences=max_sequences)
        self.round = 0

    def run(self, prompts: int, samples: int) -> int:
        from auditdesk.core.engine import GenerationRequest, SamplingParams

        r = self.round
        self.round += 1
        requests = [
            GenerationRequest(f"r{r}-p{p}-s{s}", _prompt(QUESTIONS[(r * prompts + p) % len(QUESTIONS)]),
                              seed=1000 + 997 * r + 31 * p + s)
            for p in range(prompts)
            for s in range(samples)
        ]
        params = SamplingParams(temperature=TEMPERATURE, top_p=0.95, top_k=40, max_tokens=MAX_TOKENS)
        return sum(a.completion_tokens for a in self.engine.generate(requests, params))

    def close(self) -> None:
        self.engine.close()


class Bare:
    """Reference: a bare hand-written batched loop over llama.cpp's low-level API.

    `n_seq` sequences, one prompt each, advanced together for exactly MAX_TOKENS
    steps with one decode per step and a sampler chain per sequence (no stop
    checks, no scheduling, no worker). It shows what the engine's bookkeeping costs.
    """

    def __init__(self, model: str, threads: int, n_seq: int, gpu_layers: int = 0) -> None:
        import llama_cpp as ll

        self.ll, self.n_seq, self.count = ll, n_seq, 0
        self._quiet = ll.llama_log_callback(lambda level, text, data: None)
        ll.llama_log_set(self._quiet, None)
        model_params = ll.llama_model_default_params()
        model_params.n_gpu_layers = gpu_layers
        self.model = ll.llama_model_load_from_file(model.encode(), model_params)
        self.vocab = ll.llama_model_get_vocab(self.model)
        params = ll.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, 512, 512, n_seq
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified, params.no_perf = True, True
        self.ctx = ll.llama_init_from_model(self.model, params)
        self.batch = ll.llama_batch_init(512, 0, n_seq)

    def _tokens(self, text: str) -> list[int]:
        data = text.encode()
        buf = (self.ll.llama_token * (len(data) + 8))()
        n = self.ll.llama_tokenize(self.vocab, data, len(data), buf, len(data) + 8, True, True)
        return list(buf[:n])

    def _put(self, rows) -> None:
        batch = self.batch
        for i, (token, pos, seq, logits) in enumerate(rows):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(rows)
        if self.ll.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def run(self) -> int:
        ll = self.ll
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        chains, pos, last = [], [], []
        for seq in range(self.n_seq):
            i = self.count
            self.count += 1
            chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
            for sampler in (ll.llama_sampler_init_top_k(40), ll.llama_sampler_init_top_p(0.95, 1),
                            ll.llama_sampler_init_temp(TEMPERATURE), ll.llama_sampler_init_dist(1000 + i)):
                ll.llama_sampler_chain_add(chain, sampler)
            chains.append(chain)
            tokens = self._tokens(_prompt(QUESTIONS[i % len(QUESTIONS)]))
            self._put([(t, j, seq, j == len(tokens) - 1) for j, t in enumerate(tokens)])
            last.append(ll.llama_sampler_sample(chain, self.ctx, len(tokens) - 1))
            pos.append(len(tokens))
        for _ in range(MAX_TOKENS - 1):
            self._put([(last[s], pos[s], s, True) for s in range(self.n_seq)])
            for s in range(self.n_seq):
                last[s] = ll.llama_sampler_sample(chains[s], self.ctx, s)
                pos[s] += 1
        for chain in chains:
            ll.llama_sampler_free(chain)
        return self.n_seq * MAX_TOKENS

    def close(self) -> None:
        self.ll.llama_batch_free(self.batch)
        self.ll.llama_free(self.ctx)
        self.ll.llama_model_free(self.model)


_FIRST_ANSWER = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from auditdesk.core.engine import open_engine, ModelSpec, SamplingParams, GenerationRequest
engine = open_engine(ModelSpec(path={model!r}, n_ctx=2048, n_threads={threads}, n_gpu_layers={gpu_layers}),
                     backend={backend!r})
answer = next(iter(engine.generate([GenerationRequest("k", {prompt!r}, seed=7)],
                                   SamplingParams(max_tokens={max_tokens}, stop=()))))
print(time.perf_counter() - t0, answer.completion_tokens)
engine.close()
"""


def first_answer(model: str, threads: int, backend: str, gpu_layers: int = 0) -> float:
    """Wall time from a fresh interpreter's first import to the first answer."""
    code = _FIRST_ANSWER.format(repo=str(REPO), model=model, threads=threads, backend=backend, gpu_layers=gpu_layers,
                                prompt=_prompt(QUESTIONS[0]), max_tokens=MAX_TOKENS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF to use (default: the bundled Gemma 3 270M)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backend", default="llama-worker", choices=["llama-worker", "llama-inproc"])
    parser.add_argument("--gpu-layers", type=int, default=0, help="layers to offload (needs a GPU build)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c)")
    parser.add_argument("--repeats", type=int, default=5, help="load + first answer repetitions")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from auditdesk.core.engine.base import DEFAULT_MAX_SEQUENCES
    from auditdesk.core.engine.hardware import default_threads

    if args.model:
        model = args.model
    else:
        from auditdesk.core.models.defaults import default_base_model

        model = str(default_base_model())
    threads = default_threads(args.threads)
    info = machine()
    print(f"model: {Path(model).name}  threads: {threads}  max_tokens: {MAX_TOKENS}  temperature: {TEMPERATURE}")
    print(f"machine: {info['cpu']}, {info['physical_cores']} physical cores; {info['llama_cpp']}")
    print(f"load average before: {info['load_average']}")

    results = {"machine": info, "model": Path(model).name, "threads": threads, "backend": args.backend}
    naive = Naive(model, threads, args.gpu_layers)
    eight = Batched(model, threads, max_sequences=8, backend=args.backend, gpu_layers=args.gpu_layers)
    sixteen = Batched(model, threads, max_sequences=16, backend=args.backend, gpu_layers=args.gpu_layers)
    default = Batched(model, threads, max_sequences=DEFAULT_MAX_SEQUENCES, backend=args.backend,
                      gpu_layers=args.gpu_layers)
    bare = Bare(model, threads, 16, args.gpu_layers)
    modes = {
        # (c) asks for 64 answers per call, as the audit runner does (runner/plan.py).
        "a_naive": ("(a) naive create_completion loop", lambda: naive.run(6)),
        "b_8_per_prompt": ("(b) engine, 8 samples per prompt", lambda: eight.run(4, 8)),
        "c_in_flight": (f"(c) engine, {DEFAULT_MAX_SEQUENCES} in flight (default)", lambda: default.run(8, 8)),
        "c_16_in_flight": ("(c16) engine, 16 in flight", lambda: sixteen.run(8, 8)),
    }
    modes["bare_16"] = ("(ref) bare low-level loop, 16 seqs", bare.run)
    totals = {key: [0, 0.0] for key in modes}
    # Short interleaved rounds: on a shared machine the load drifts, and
    # interleaving makes the drift hit the three modes alike.
    for round_no in range(args.rounds):
        for key, (_, work) in modes.items():
            started = time.perf_counter()
            totals[key][0] += work()
            totals[key][1] += time.perf_counter() - started
        print(f"  round {round_no + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}")
    for closer in (naive, eight, sixteen, default, bare):
        closer.close()
    for key, (label, _) in modes.items():
        tok, sec = totals[key]
        results[key] = {"tokens": tok, "seconds": sec, "tok_s": tok / sec}
        print(f"{label:34s}: {tok:5d} tokens in {sec:7.2f} s = {tok / sec:7.1f} tok/s")
    a = results["a_naive"]["tok_s"]
    rb = results["b_8_per_prompt"]["tok_s"] / a
    rc = results["c_in_flight"]["tok_s"] / a
    rc16 = results["c_16_in_flight"]["tok_s"] / a
    results["ratio_b_a"], results["ratio_c_a"], results["ratio_c16_a"] = rb, rc, rc16
    print(f"ratio (b)/(a)   = {rb:.2f}  (target >= 2.0)")
    print(f"ratio (c)/(a)   = {rc:.2f}  (target >= 3.0; {DEFAULT_MAX_SEQUENCES} in flight)")
    print(f"ratio (c16)/(a) = {rc16:.2f}  (16 in flight, for reference)")
    results["ratio_bare16_a"] = results["bare_16"]["tok_s"] / a
    print(f"ratio (ref)/(a) = {results['ratio_bare16_a']:.2f}  (bare loop, 16 sequences, no stops)")

    inproc, worker = [], []
    for _ in range(args.repeats):  # interleaved so background load hits both alike
        inproc.append(first_answer(model, threads, "llama-inproc", args.gpu_layers))
        worker.append(first_answer(model, threads, "llama-worker", args.gpu_layers))
    mi, mw = statistics.median(inproc), statistics.median(worker)
    # The fastest of several runs is the one least disturbed by other work.
    bi, bw = min(inproc), min(worker)
    results["first_answer"] = {"inproc_s": inproc, "worker_s": worker,
                               "overhead_median": mw / mi - 1, "overhead_best": bw / bi - 1}
    print(f"load + first answer, median of {args.repeats}: in-process {mi:.2f} s, worker {mw:.2f} s, "
          f"overhead {100 * (mw / mi - 1):+.1f}%")
    print(f"load + first answer, best of {args.repeats}:   in-process {bi:.2f} s, worker {bw:.2f} s, "
          f"overhead {100 * (bw / bi - 1):+.1f}% (target < 10%)")
    results["load_average_after"] = os.getloadavg()
    print(f"load average after: {results['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
