"""Generating answers and scoring text with local or remote language models.

`open_engine` is the one door: a llama.cpp worker process (`worker.py`, the default)
running the batched llama.cpp engine (`llama_batched.py`), that same engine
in-process (benchmarks, tests), or an OpenAI-compatible HTTP server (`http.py`).
Importing this package must stay cheap: no llama_cpp until a model is opened.
"""

from __future__ import annotations

from auditdesk.core.engine.base import (
    DEFAULT_MAX_SEQUENCES,
    Answer,
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    ModelSpec,
    SamplingParams,
    WorkerCrashed,
)

BACKENDS = ("llama-worker", "llama-inproc", "http")

__all__ = [
    "Answer",
    "BACKENDS",
    "Engine",
    "EngineError",
    "EngineInfo",
    "GenerationRequest",
    "ModelSpec",
    "SamplingParams",
    "WorkerCrashed",
    "open_engine",
]


def open_engine(
    spec: ModelSpec,
    *,
    backend: str = "llama-worker",
    url: str | None = None,
    max_sequences: int = DEFAULT_MAX_SEQUENCES,
) -> Engine:
    """Load the model described by `spec` with the chosen backend and return its engine.

    A spec with a `server` always goes to that server (the HTTP backend).
    """
    if spec.server:
        from auditdesk.core.engine.http import HttpEngine

        return HttpEngine(url or spec.server, spec=spec, model=spec.path)
    if backend == "llama-worker":
        from auditdesk.core.engine.worker import LlamaWorkerEngine

        return LlamaWorkerEngine(spec, max_sequences=max_sequences)
    if backend == "llama-inproc":
        from auditdesk.core.engine.llama_batched import BatchedGenerator

        return BatchedGenerator(spec, max_sequences=max_sequences)
    if backend == "http":
        from auditdesk.core.engine.http import HttpEngine

        if not url:
            raise EngineError("the HTTP backend needs the server's address (for example http://127.0.0.1:8080).")
        return HttpEngine(url, spec=spec)
    raise EngineError(f"unknown engine backend '{backend}'; choose one of: {', '.join(BACKENDS)}.")
