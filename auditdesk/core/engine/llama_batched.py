"""Batched answer generation over llama.cpp's low-level API, in the current process.

Requests sharing a prompt evaluate it once (its KV cells are shared by all their
sequences); up to `max_sequences` sequences from any prompts advance together with
one `llama_decode` per step, each with its own sampler and seed. The schedule
depends only on the request list, never on timing, so answers are reproducible.
An answer's time limit counts its share of the computing time (a step that
advances 64 answers costs each a 64th), so a batch that makes every answer wait
does not cut answers by the wall clock, which would make them depend on the
computer's speed and load.
Must never be loaded in the GUI/CLI process by default: the worker owns it.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from auditdesk.core.engine.base import (
    DEFAULT_MAX_SEQUENCES,
    Answer,
    EngineError,
    EngineInfo,
    GenerationRequest,
    ModelSpec,
    SamplingParams,
)
from auditdesk.core.engine.hardware import (
    available_memory_bytes,
    default_threads,
    gpu_offload_supported,
    llama_cpp_version,
    llama_extra_buffers_allowed,
)
from auditdesk.core.progress import Cancelled, CancelToken

# The cache all sequences share is sized for max_sequences full contexts, but
# never past this (nor past a quarter of the free memory), unless one context
# alone needs more. Admission waits for room, so a smaller cache only means
# fewer answers in flight when prompts and answers are long.
KV_POOL_BUDGET_BYTES = 128 * 2**20

# llama.cpp logs through one process-wide callback; keep the last lines so a load
# failure can say why, and keep the ctypes object alive for as long as it is set.
_LOG_LINES: deque[str] = deque(maxlen=200)
_LOG_CALLBACK = None


def _install_log_capture() -> None:
    global _LOG_CALLBACK
    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    if _LOG_CALLBACK is not None:
        return
    echo = os.environ.get("AUDITDESK_DEBUG") == "1"

    @llama_cpp.llama_log_callback
    def _capture(level, text, user_data):  # noqa: ARG001 - ctypes signature
        line = text.decode("utf-8", "replace")
        _LOG_LINES.append(line)
        if echo:
            os.write(2, text)

    _LOG_CALLBACK = _capture
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))


def _log_tail(match: str = "") -> str:
    lines = [line.strip() for line in _LOG_LINES if match in line and line.strip()]
    return lines[-1] if lines else ""


@dataclass
class _Group:
    """Requests with the same prompt, admitted together so the prompt is read once."""

    prompt_tokens: list[int]
    requests: deque[GenerationRequest]


@dataclass
class _Sequence:
    request: GenerationRequest
    seq_id: int
    sampler: object
    prompt_len: int
    cap: int  # the most tokens this answer may generate
    cohort: list[int]  # [answers of its admission still running, their shared prompt cells]
    started: float
    spent: float = 0.0  # its share of the prompt and decoding steps so far, in seconds
    n_generated: int = 0
    last_token: int = -1
    raw: bytearray = field(default_factory=bytearray)
    text: str = ""
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    finish: str | None = None


def _share(seqs: Sequence[_Sequence], seconds: float) -> None:
    """Charge each sequence its part of a step that computed them all together."""
    for seq in seqs:
        seq.spent += seconds / len(seqs)


class BatchedGenerator:
    """One loaded model and one context that many sequences share."""

    def __init__(
        self, spec: ModelSpec, *, max_sequences: int = DEFAULT_MAX_SEQUENCES, kv_cells: int | None = None
    ) -> None:
        import llama_cpp

        self._ll = llama_cpp
        self.spec = spec
        self.max_sequences = max(1, int(max_sequences))
        self._model = None
        self._ctx = None
        self._adapter = None
        self._batch = None
        self._closed = False
        _install_log_capture()
        llama_cpp.llama_backend_init()

        path = Path(spec.path)
        name = spec.label or path.name
        if not path.is_file():
            raise EngineError(f"the model file for '{name}' was not found: {path}")
        gpu_ok = gpu_offload_supported()
        self._threads = default_threads(spec.n_threads)
        notes: list[str] = []
        gpu_layers = spec.n_gpu_layers if gpu_ok else 0
        if spec.n_gpu_layers and not gpu_ok:
            notes.append(
                "GPU layers were requested but this llama.cpp build has no GPU support; the model ran on the CPU."
            )

        _LOG_LINES.clear()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = gpu_layers
        if not llama_extra_buffers_allowed():
            # llama.cpp's AMX kernel crashes this process (see hardware.py); the ordinary kernels give the answers.
            model_params.use_extra_bufts = False
            notes.append("llama.cpp's AMX kernels were left unused on this CPU (they crash in this llama.cpp build).")
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), model_params)
        if not self._model:
            detail = _log_tail("error") or _log_tail()
            raise EngineError(
                f"llama.cpp could not load the model '{name}' ({path.name}); the file is not a usable GGUF model"
                + (f" ({detail})." if detail else ".")
            )
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        n_batch = max(int(spec.n_batch), self.max_sequences, 32)
        self._n_batch = n_batch

        n_ctx = max(1, int(spec.n_ctx))
        needed = kv_cache_bytes(llama_cpp, self._model, n_ctx)
        available = available_memory_bytes()
        if available is not None and needed > available:
            self.close()
            raise EngineError(
                f"a context of {spec.n_ctx:,} tokens for '{name}' needs about {needed / 2**30:.1f} GiB of memory "
                f"for its cache but only {available / 2**30:.1f} GiB is free; try a smaller context size."
            )
        if kv_cells is None:
            kv_cells = pool_cells(n_ctx, self.max_sequences, needed // n_ctx, available)
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = max(n_ctx, int(kv_cells))
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_batch
        ctx_params.n_seq_max = self.max_sequences
        ctx_params.n_threads = self._threads
        ctx_params.n_threads_batch = self._threads
        # One cell pool for all sequences: a shared prompt costs its cells once.
        ctx_params.kv_unified = True
        ctx_params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            self.close()
            raise EngineError(
                f"could not prepare a context of {spec.n_ctx} tokens for '{name}'; "
                "the machine may not have enough memory, so try a smaller context size."
            )
        self.kv_cells = llama_cpp.llama_n_ctx(self._ctx)
        self.n_ctx = min(n_ctx, self.kv_cells)  # what one answer may use
        self._mem = llama_cpp.llama_get_memory(self._ctx)

        if spec.lora_path:
            lora = Path(spec.lora_path)
            adapter = (
                llama_cpp.llama_adapter_lora_init(self._model, str(lora).encode("utf-8"))
                if lora.is_file()
                else None
            )
            if not adapter:
                self.close()
                raise EngineError(
                    f"the LoRA adapter {lora.name} could not be applied to '{name}'; "
                    "check that it was made for this base model."
                )
            self._adapter = adapter
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(float(spec.lora_scale))
            if llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales):
                self.close()
                raise EngineError(f"the LoRA adapter {lora.name} could not be applied to '{name}'.")

        self._batch = llama_cpp.llama_batch_init(n_batch, 0, self.max_sequences)
        offloaded = _log_tail("offloaded")
        if gpu_layers and offloaded:
            notes.append(offloaded)
        self._info = EngineInfo(
            backend="llama-inproc",
            model_path=str(path),
            llama_cpp_version=llama_cpp_version(),
            n_threads=self._threads,
            n_gpu_layers_requested=spec.n_gpu_layers,
            n_gpu_layers_used=_parse_offloaded(offloaded) if gpu_layers else 0,
            gpu_offload_supported=gpu_ok,
            n_ctx=self.n_ctx,
            max_sequences=self.max_sequences,
            kv_cells=self.kv_cells,
            notes=notes,
        )
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- small helpers -------------------------------------------------------

    def info(self) -> EngineInfo:
        return self._info

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata string of the loaded model (e.g. `tokenizer.chat_template`)."""
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._ll.llama_model_meta_val_str(self._model, key.encode("utf-8"), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            if size >= 1 << 24:  # a template this long is not one we would render anyway
                return None
            size = n + 1

    def bos_token(self) -> int:
        return self._bos

    def eos_token(self) -> int:
        return self._ll.llama_vocab_eos(self._vocab)

    def token_text(self, token: int) -> str:
        """The vocabulary's text for a token ("" when there is none), e.g. "<bos>"."""
        if token is None or token < 0:
            return ""
        raw = self._ll.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", "replace") if raw else ""

    def render_prompts(self, questions: Sequence[str], format_id: str):
        """Render questions in `format_id` with this model's chat template (see prompts.py)."""
        from auditdesk.core.engine.prompts import TEMPLATE_KEY, render_prompts

        return render_prompts(
            questions,
            format_id,
            template=self.metadata(TEMPLATE_KEY),
            bos_token=self.token_text(self.bos_token()),
            eos_token=self.token_text(self.eos_token()),
        )

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        tokens = (self._ll.llama_token * n_max)()
        n = self._ll.llama_tokenize(self._vocab, data, len(data), tokens, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            tokens = (self._ll.llama_token * n_max)()
            n = self._ll.llama_tokenize(self._vocab, data, len(data), tokens, n_max, add_special, parse_special)
        out = list(tokens[:n])
        # A rendered chat template often starts with its own BOS; do not double it.
        if len(out) >= 2 and out[0] == out[1] == self._bos:
            out = out[1:]
        return out

    def _piece(self, token: int) -> bytes:
        n = self._ll.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._ll.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def _new_sampler(self, params: SamplingParams, seed: int):
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if params.repeat_penalty and params.repeat_penalty != 1.0:
            ll.llama_sampler_chain_add(
                chain, ll.llama_sampler_init_penalties(self.n_vocab, 64, params.repeat_penalty, 0.0, 0.0)
            )
        if params.temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        if params.top_k > 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(int(params.top_k)))
        if 0 < params.top_p < 1:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(float(params.top_p), 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(float(params.temperature)))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(int(seed) & 0xFFFFFFFF))
        return chain

    def _fill_batch(self, entries: list[tuple[int, int, Sequence[int], bool]]) -> None:
        """Put (token, position, sequence ids, wants logits) rows into the batch."""
        batch = self._batch
        for i, (token, pos, seq_ids, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = len(seq_ids)
            row = batch.seq_id[i]
            for j, sid in enumerate(seq_ids):
                row[j] = sid
            batch.logits[i] = 1 if logits else 0
        batch.n_tokens = len(entries)

    def _decode(self) -> None:
        rc = self._ll.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise EngineError(f"llama.cpp failed to evaluate a batch (code {rc}); try a larger context size.")

    # -- generation ----------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[Answer]:
        """Yield one Answer per request as each finishes; raise Cancelled when told to stop."""
        if cancel is not None and should_stop is None:
            should_stop = _cancelled_check(cancel)
        if self._closed:
            raise EngineError("the model was already unloaded.")
        groups: dict[str, _Group] = {}
        order: list[_Group] = []
        for req in requests:
            group = groups.get(req.prompt)
            if group is None:
                tokens = self.tokenize(req.prompt)
                group = _Group(tokens, deque())
                groups[req.prompt] = group
                order.append(group)
            group.requests.append(req)

        pending: deque[_Group] = deque()
        for group in order:
            n_prompt = len(group.prompt_tokens)
            problem = None
            if n_prompt == 0:
                problem = "the prompt is empty after tokenisation, so there is nothing to answer."
            elif n_prompt >= self.n_ctx:
                problem = (
                    f"the prompt is {n_prompt} tokens long but the context holds {self.n_ctx}; "
                    "shorten the question or raise the context size."
                )
            if problem:
                for req in group.requests:
                    yield Answer(key=req.key, text="", prompt_tokens=n_prompt, finish_reason="error", error=problem)
                continue
            pending.append(group)

        live: dict[int, _Sequence] = {}
        free_ids = list(range(self.max_sequences - 1, -1, -1))  # pop() hands out 0 first
        reserved = 0
        self._ll.llama_memory_clear(self._mem, True)
        try:
            while pending or live:
                if should_stop is not None and should_stop():
                    raise Cancelled("cancelled by the user")
                # Admit new prompts while sequence slots and reserved KV cells allow.
                while pending and free_ids:
                    group = pending[0]
                    n_prompt = len(group.prompt_tokens)
                    cap = max(1, min(params.max_tokens, self.n_ctx - n_prompt))
                    room = self.kv_cells - reserved - n_prompt
                    count = min(len(group.requests), len(free_ids), room // cap if room > 0 else 0)
                    if count <= 0:
                        if live:
                            break
                        count = 1  # alone in the context it always fits: cap <= n_ctx - n_prompt
                    admitted = [group.requests.popleft() for _ in range(count)]
                    if not group.requests:
                        pending.popleft()
                    seqs = []
                    now = time.monotonic()
                    cohort = [count, n_prompt]
                    for req in admitted:
                        sid = free_ids.pop()
                        seq = _Sequence(
                            request=req,
                            seq_id=sid,
                            sampler=self._new_sampler(params, req.seed),
                            prompt_len=n_prompt,
                            cap=cap,
                            cohort=cohort,
                            started=now,
                        )
                        live[sid] = seq
                        seqs.append(seq)
                    reserved += n_prompt + cap * count
                    last_index = self._eval_prompt(group.prompt_tokens, [s.seq_id for s in seqs])
                    _share(seqs, time.monotonic() - now)
                    for seq in seqs:
                        token = self._ll.llama_sampler_sample(seq.sampler, self._ctx, last_index)
                        self._advance(seq, token, params)
                    for seq in seqs:
                        if seq.finish:
                            reserved -= _released(seq)
                            yield self._finish(seq, live, free_ids)
                if not live:
                    continue
                stepping = sorted(live.values(), key=lambda s: s.seq_id)
                step_started = time.monotonic()
                self._fill_batch(
                    [(s.last_token, s.prompt_len + s.n_generated - 1, (s.seq_id,), True) for s in stepping]
                )
                self._decode()
                _share(stepping, time.monotonic() - step_started)
                for i, seq in enumerate(stepping):
                    token = self._ll.llama_sampler_sample(seq.sampler, self._ctx, i)
                    self._advance(seq, token, params)
                for seq in stepping:
                    if seq.finish:
                        reserved -= _released(seq)
                        yield self._finish(seq, live, free_ids)
        finally:
            for seq in list(live.values()):
                self._ll.llama_sampler_free(seq.sampler)
            live.clear()
            self._ll.llama_memory_clear(self._mem, True)

    def _eval_prompt(self, tokens: list[int], seq_ids: list[int]) -> int:
        """Decode a prompt once for all `seq_ids`; return the batch index of its last logits."""
        n_batch = self._n_batch
        for start in range(0, len(tokens), n_batch):
            chunk = tokens[start : start + n_batch]
            last = start + len(chunk) == len(tokens)
            self._fill_batch(
                [
                    (tok, start + j, seq_ids, last and j == len(chunk) - 1)
                    for j, tok in enumerate(chunk)
                ]
            )
            self._decode()
        return len(tokens) - 1 - ((len(tokens) - 1) // n_batch) * n_batch

    def _advance(self, seq: _Sequence, token: int, params: SamplingParams) -> None:
        """Take one sampled token into a sequence and decide whether it is finished."""
        if self._ll.llama_vocab_is_eog(self._vocab, token):
            seq.finish = "stop"
            seq.text += seq.decoder.decode(b"", final=True)
            return
        seq.n_generated += 1
        seq.last_token = token
        piece = self._piece(token)
        seq.raw += piece
        seq.text += seq.decoder.decode(piece)
        if params.stop:
            # Only the tail can hold a new match: the text before it was checked.
            window = len(piece) + max(len(s) for s in params.stop) + 4
            start = max(0, len(seq.text) - window)
            hits = [i for i in (seq.text.find(s, start) for s in params.stop if s) if i >= 0]
            if hits:
                seq.text = seq.text[: min(hits)]
                seq.finish = "stop"
                return
        if seq.n_generated >= seq.cap:
            seq.finish = "length"
        elif seq.spent > params.time_limit_s:
            seq.finish = "time"
        if seq.finish:
            seq.text += seq.decoder.decode(b"", final=True)

    def _finish(self, seq: _Sequence, live: dict[int, _Sequence], free_ids: list[int]) -> Answer:
        self._ll.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
        self._ll.llama_sampler_free(seq.sampler)
        del live[seq.seq_id]
        free_ids.append(seq.seq_id)
        free_ids.sort(reverse=True)  # lowest id next: the schedule must not depend on history
        return Answer(
            key=seq.request.key,
            text=seq.text,
            prompt_tokens=seq.prompt_len,
            completion_tokens=seq.n_generated,
            finish_reason=seq.finish or "stop",
            seconds=round(time.monotonic() - seq.started, 4),
        )

    # -- scoring -------------------------------------------------------------

    def loglikelihood(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Sum of log-probabilities of each text's tokens after the first, and their count."""
        import numpy as np

        results = []
        for text in texts:
            tokens = self.tokenize(text, parse_special=False)
            if len(tokens) > self.n_ctx:
                raise EngineError(
                    f"a text to score is {len(tokens)} tokens long but the context holds {self.n_ctx}; "
                    "raise the context size."
                )
            self._ll.llama_memory_clear(self._mem, True)
            total = 0.0
            for start in range(0, len(tokens) - 1, self._n_batch):
                chunk = tokens[start : start + self._n_batch]
                self._fill_batch([(tok, start + j, (0,), True) for j, tok in enumerate(chunk)])
                self._decode()
                for j in range(len(chunk)):
                    target = start + j + 1
                    if target >= len(tokens):
                        break
                    ptr = self._ll.llama_get_logits_ith(self._ctx, j)
                    row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
                    peak = row.max()
                    log_norm = peak + np.log(np.exp(row - peak).sum())
                    total += float(row[tokens[target]] - log_norm)
            self._ll.llama_memory_clear(self._mem, True)
            results.append((total, max(0, len(tokens) - 1)))
        return results

    def single_token_ids(self, texts: Sequence[str]) -> list[int | None]:
        """The token whose text is exactly each string (None when the vocabulary has none)."""
        cache = self.__dict__.setdefault("_single_tokens", {})
        missing = []
        for text in texts:
            if text in cache:
                continue
            ids = self.tokenize(text, add_special=False, parse_special=False)
            if len(ids) == 1 and self._piece(ids[0]) == text.encode("utf-8"):
                cache[text] = ids[0]
            else:
                missing.append(text)
        if missing:
            # Tokenizers that prefix a space (SentencePiece) never produce a bare "5" from "5": look it up.
            want = {t.encode("utf-8"): t for t in missing}
            for text in missing:
                cache[text] = None
            for token in range(self.n_vocab):
                text = want.get(self._piece(token))
                if text is not None and cache[text] is None:
                    cache[text] = token
        return [cache[t] for t in texts]

    def next_token_logprobs(
        self,
        prefix: str,
        bodies: Sequence[str],
        endings: Sequence[str],
        candidates: Sequence[str],
        *,
        batched: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[list[float | None]]]:
        """Log-probability of each candidate token right after `prefix + body + ending`.

        One forward pass, no sampling: result[body][ending][candidate] (None for a
        candidate that is not exactly one token of this vocabulary). With `batched`
        the prefix is read once and shared by every sequence, and many bodies with
        all their endings are packed into one decode; without it each prompt is read
        whole, alone (the naive way, kept for the benchmark and as a cross-check).
        """
        import numpy as np

        if self._closed:
            raise EngineError("the model was already unloaded.")
        cand_ids = self.single_token_ids(candidates)
        wanted = [i for i, t in enumerate(cand_ids) if t is not None]
        prefix_tokens = self.tokenize(prefix)
        body_tokens = [self.tokenize(b, add_special=False, parse_special=False) for b in bodies]
        # Endings may close a chat turn (special tokens); answers in the bodies never may.
        ending_tokens = [self.tokenize(e, add_special=False, parse_special=True) for e in endings]
        if not endings or any(not t for t in ending_tokens):
            raise EngineError("every prompt ending must be at least one token long.")
        longest = len(prefix_tokens) + max((len(t) for t in body_tokens), default=0) + max(len(t) for t in ending_tokens)
        if longest > self.n_ctx:
            raise EngineError(
                f"a prompt to grade is {longest} tokens long but the context holds {self.n_ctx}; "
                "shorten the answers or raise the context size."
            )
        n_end = len(endings)
        batched = batched and self.max_sequences > n_end  # seq 0 holds the shared prefix
        results: list[list[list[float | None]]] = [[[None] * len(candidates) for _ in endings] for _ in bodies]

        def read(batch_index: int, body: int, ending: int) -> None:
            ptr = self._ll.llama_get_logits_ith(self._ctx, batch_index)
            row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            peak = row.max()
            log_norm = peak + np.log(np.exp(row - peak).sum())
            for c in wanted:
                results[body][ending][c] = float(row[cand_ids[c]] - log_norm)

        def run(entries: list, reads: dict) -> None:
            # Decode in chunks of n_batch and read each requested row while its batch is current.
            for start in range(0, len(entries), self._n_batch):
                chunk = entries[start : start + self._n_batch]
                self._fill_batch(chunk)
                self._decode()
                for j in range(len(chunk)):
                    if start + j in reads:
                        read(j, *reads[start + j])

        def entries_for(body: int, seqs: list[int], offset: int, entries: list, reads: dict) -> None:
            toks = body_tokens[body]
            entries += [(tok, offset + j, seqs, False) for j, tok in enumerate(toks)]
            for e, (sid, etoks) in enumerate(zip(seqs, ending_tokens)):
                pos = offset + len(toks)
                for k, tok in enumerate(etoks):
                    last = k == len(etoks) - 1
                    if last:
                        reads[len(entries)] = (body, e)
                    entries.append((tok, pos + k, (sid,), last))

        self._ll.llama_memory_clear(self._mem, True)
        try:
            if not batched:
                for b in range(len(bodies)):
                    if should_stop is not None and should_stop():
                        raise Cancelled("cancelled by the user")
                    for e in range(n_end):
                        self._ll.llama_memory_clear(self._mem, True)
                        entries = [(tok, j, (0,), False) for j, tok in enumerate(prefix_tokens)]
                        reads: dict = {}
                        single = [body_tokens[b], ending_tokens[e]]
                        pos = len(prefix_tokens)
                        for toks in single:
                            entries += [(tok, pos + j, (0,), False) for j, tok in enumerate(toks)]
                            pos += len(toks)
                        entries[-1] = (*entries[-1][:3], True)
                        reads[len(entries) - 1] = (b, e)
                        run(entries, reads)
                return results
            n_prefix = len(prefix_tokens)
            run([(tok, j, (0,), False) for j, tok in enumerate(prefix_tokens)], {})
            per_group = max(1, (self.max_sequences - 1) // n_end)
            b = 0
            while b < len(bodies):
                if should_stop is not None and should_stop():
                    raise Cancelled("cancelled by the user")
                group: list[int] = []
                used = 0
                while b < len(bodies) and len(group) < per_group:
                    cost = len(body_tokens[b]) + sum(len(t) for t in ending_tokens)
                    if group and (used + cost > self._n_batch or n_prefix + used + cost > self.kv_cells):
                        break
                    group.append(b)
                    used += cost
                    b += 1
                entries: list = []
                reads = {}
                seq_ids = []
                for g, body in enumerate(group):
                    seqs = [1 + g * n_end + e for e in range(n_end)]
                    for sid in seqs:
                        self._ll.llama_memory_seq_cp(self._mem, 0, sid, -1, -1)
                    seq_ids += seqs
                    entries_for(body, seqs, n_prefix, entries, reads)
                run(entries, reads)
                for sid in seq_ids:
                    self._ll.llama_memory_seq_rm(self._mem, sid, -1, -1)
            return results
        finally:
            self._ll.llama_memory_clear(self._mem, True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ll = self._ll
        if self._batch is not None:
            ll.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            ll.llama_free(self._ctx)
            self._ctx = None
        if self._adapter:
            ll.llama_adapter_lora_free(self._adapter)
            self._adapter = None
        if self._model:
            ll.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass


def _cancelled_check(cancel: CancelToken) -> Callable[[], bool]:
    """A stop check bound to the token itself (not to a name the decode loop reuses)."""
    return lambda: cancel.cancelled


def kv_cache_bytes(ll, model, n_ctx: int) -> int:
    """An estimate of the f16 key/value cache a context needs (attention layers only)."""
    n_layer = ll.llama_model_n_layer(model)
    n_head = max(1, ll.llama_model_n_head(model))
    n_head_kv = max(1, ll.llama_model_n_head_kv(model))
    fallback = ll.llama_model_n_embd(model) // n_head
    # Many models (Gemma among them) have heads wider than n_embd / n_head.
    arch = _model_meta(ll, model, "general.architecture")
    head_k = _meta_int(_model_meta(ll, model, f"{arch}.attention.key_length"), fallback)
    head_v = _meta_int(_model_meta(ll, model, f"{arch}.attention.value_length"), head_k)
    return int(n_layer) * int(n_ctx) * n_head_kv * (head_k + head_v) * 2  # 2 bytes per f16 value


def _model_meta(ll, model, key: str) -> str:
    buf = ctypes.create_string_buffer(256)
    n = ll.llama_model_meta_val_str(model, key.encode("utf-8"), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if 0 <= n < len(buf) else ""


def _meta_int(text: str, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if 0 < value <= 1 << 16 else default


def pool_cells(n_ctx: int, max_sequences: int, bytes_per_cell: int, available: int | None) -> int:
    """Cells of the shared cache: room for every sequence's full context, within the budget."""
    budget = KV_POOL_BUDGET_BYTES if available is None else min(KV_POOL_BUDGET_BYTES, available // 4)
    affordable = budget // max(1, bytes_per_cell) // 256 * 256  # llama.cpp rounds a context up to 256
    return max(n_ctx, min(n_ctx * max_sequences, affordable))


def _released(seq: _Sequence) -> int:
    """KV cells an ending answer gives back: its own, plus the prompt once its cohort is done."""
    seq.cohort[0] -= 1
    return seq.cap + (seq.cohort[1] if seq.cohort[0] == 0 else 0)


def _parse_offloaded(line: str) -> int:
    """The layer count from llama.cpp's 'offloaded N/M layers to GPU' log line."""
    import re

    match = re.search(r"offloaded (\d+)/(\d+) layers", line)
    return int(match.group(1)) if match else 0
