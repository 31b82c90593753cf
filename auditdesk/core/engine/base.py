"""The engine interface every backend implements (llama.cpp worker, HTTP).

One request is one sampled answer: a prompt and a seed. Backends group requests
that share a prompt so the prompt is evaluated once, and run many sequences in
one batch, but every answer depends only on (model, prompt, params, seed) plus
the batch the caller formed, never on timing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Protocol, Sequence

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken


# Answers in flight at once in the llama.cpp engine. On a 2-core CPU with Gemma 3
# 270M, 32 gives about 12% more tokens/s than 16 (docs/performance.md).
DEFAULT_MAX_SEQUENCES = 32


class EngineError(AuditDeskError):
    """A model could not be loaded or run; the message is written for the user."""


class WorkerCrashed(EngineError):
    """The child process that ran the model died (native crash, out of memory)."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how: everything here is recorded with a run."""

    path: str
    lora_path: str | None = None
    lora_scale: float = 1.0
    n_ctx: int = 2048  # per answer: the longest prompt plus answer one question may use
    n_threads: int | None = None  # None: the machine's physical cores, never llama.cpp's default
    n_gpu_layers: int = 0
    n_batch: int = 512
    label: str = ""  # "base" / "tuned" / "judge", for messages
    # An OpenAI-compatible server that runs this model; `path` is then the model's
    # name on that server, and threads, context and GPU layers are the server's.
    server: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplingParams:
    """How answers are sampled; recorded with every run."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40  # never 0 with large vocabularies
    max_tokens: int = 64
    stop: tuple[str, ...] = ("\nQuestion:",)
    time_limit_s: float = 60.0  # per answer
    repeat_penalty: float = 1.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True)
class GenerationRequest:
    """One answer to produce: `key` is the caller's id for it (a work unit)."""

    key: str
    prompt: str
    seed: int


@dataclass
class Answer:
    """One generated answer, or the reason there is none."""

    key: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | time | error
    seconds: float = 0.0
    error: str | None = None


@dataclass
class EngineInfo:
    """What the engine actually used (may differ from what was asked)."""

    backend: str
    model_path: str
    llama_cpp_version: str = ""
    n_threads: int = 0
    n_gpu_layers_requested: int = 0
    n_gpu_layers_used: int = 0
    gpu_offload_supported: bool = False
    n_ctx: int = 0  # per answer (prompt + answer)
    max_sequences: int = 0  # answers generated together
    kv_cells: int = 0  # the cache all answers in flight share, in tokens
    notes: list[str] = field(default_factory=list)


class Engine(Protocol):
    """A loaded model that can answer prompts and score text."""

    def info(self) -> EngineInfo: ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
    ) -> Iterator[Answer]:
        """Yield one Answer per request, in completion order, as each finishes."""
        ...

    def loglikelihood(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Sum of token log-probabilities of each text and its token count."""
        ...

    def next_token_logprobs(self, prefix: str, bodies: Sequence[str], endings: Sequence[str],
                            candidates: Sequence[str]) -> list[list[list[float | None]]]:
        """Log-probability of each candidate as the next token after prefix + body + ending (a judge's grade)."""
        ...

    def close(self) -> None: ...


TokenCallback = Callable[[str, str], None]  # (request key, text so far)
