"""An engine backed by an OpenAI-compatible HTTP server (llama-server, vLLM, Ollama, llama_cpp.server).

For models too big for the desktop. It talks only to the address the user
configured: proxies from the environment are ignored so requests cannot be
routed elsewhere, and nothing else on the network is ever contacted.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterator, Sequence

from auditdesk.core.engine.base import (
    Answer,
    EngineError,
    EngineInfo,
    GenerationRequest,
    ModelSpec,
    SamplingParams,
)
from auditdesk.core.progress import Cancelled, CancelToken

# Requests in flight at once. Servers batch concurrent requests (vLLM, llama-server
# with several slots), so asking one at a time would leave a GPU server idle; a
# server with fewer slots queues the rest, which counts against each answer's time limit.
DEFAULT_CONCURRENCY = 8


def server_address(url: str) -> str:
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise EngineError(f"'{url}' is not a server address; write it like http://127.0.0.1:8080.")
    path = parsed.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


# No proxy handler entries: the configured server is the only place we connect to.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fetch_json(request: urllib.request.Request | str, base: str, timeout: float) -> dict:
    """One request to the server at `base`; its failures in words (a timeout is left to the caller)."""
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return json.loads(response.read(64 * 1024 * 1024))
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise EngineError(f"the model server at {base} refused the request (HTTP {exc.code}): {detail[:300]}") from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EngineError(f"could not reach the model server at {base} ({reason}); check that it is running.") from exc
    except ValueError as exc:
        raise EngineError(f"{base} answered, but not like an OpenAI-compatible model server.") from exc


def resolve_server_model(url: str, name: str | None) -> tuple[str, list[str]]:
    """The model to ask for on a server (the one named, or the server's only model) and all it offers."""
    base = server_address(url)
    try:
        listing = _fetch_json(f"{base}/models", base, timeout=10.0)
    except TimeoutError as exc:
        raise EngineError(f"the model server at {base} did not answer within 10 s; check that it is running.") from exc
    data = listing.get("data") if isinstance(listing, dict) else None
    offered = [str(entry["id"]) for entry in data or [] if isinstance(entry, dict) and entry.get("id")]
    if name:
        if offered and name not in offered:
            raise EngineError(f"the model server at {base} has no model '{name}'; it offers: {', '.join(offered)}.")
        return name, offered
    if len(offered) == 1:
        return offered[0], offered
    if not offered:
        raise EngineError(f"the model server at {base} lists no models; name the model to use.")
    raise EngineError(f"the model server at {base} offers several models ({', '.join(offered)}); name the one to use.")


class HttpEngine:
    """Answers from a remote OpenAI-compatible completions endpoint, one request per answer,
    up to `concurrency` requests in flight."""

    def __init__(self, url: str, *, spec: ModelSpec | None = None, model: str | None = None,
                 api_key: str | None = None, timeout_s: float = 300.0,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.base_url = server_address(url)
        self.concurrency = max(1, int(concurrency))
        self.spec = spec
        self.model = model or (spec.label if spec and spec.label else None) or "default"
        self._api_key = api_key
        self._timeout = timeout_s
        self._info = EngineInfo(backend="http", model_path=self.base_url, max_sequences=self.concurrency, notes=[
            "threads, context size and GPU layers are set on the server, not by AuditDesk."
        ])

    def info(self) -> EngineInfo:
        return self._info

    def _post(self, endpoint: str, body: dict, timeout: float) -> dict:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.base_url}/{endpoint}", data=data, method="POST",
            headers={"Content-Type": "application/json"},
        )
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        return _fetch_json(request, self.base_url, timeout)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams, *,
                 cancel: CancelToken | None = None) -> Iterator[Answer]:
        """Yield one Answer per request as each arrives; each request carries its own seed."""
        queue = list(reversed(requests))  # pop() takes them in the caller's order
        if not queue:
            return
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(queue)), thread_name_prefix="auditdesk-http")
        running: set[Future] = set()
        try:
            while queue or running:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("cancelled by the user")
                while queue and len(running) < self.concurrency:
                    running.add(pool.submit(self._complete, queue.pop(), params))
                finished, running = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()  # an EngineError ends the call; answers already given are kept
        finally:
            # Requests still on the wire finish in the background and are dropped.
            pool.shutdown(wait=False, cancel_futures=True)

    def _complete(self, req: GenerationRequest, params: SamplingParams) -> Answer:
        body = {
            "model": self.model,
            "prompt": req.prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "seed": req.seed,
            "stop": list(params.stop),
            "repeat_penalty": params.repeat_penalty,
            "n": 1,
        }
        started = time.monotonic()
        try:
            reply = self._post("completions", body, timeout=params.time_limit_s)
        except EngineError as exc:
            if not (isinstance(exc.__cause__, TimeoutError) or "timed out" in str(exc)):
                raise
            reply = None
        except TimeoutError:
            reply = None
        if reply is None:
            return Answer(key=req.key, text="", finish_reason="time", seconds=time.monotonic() - started,
                          error="the server did not answer within the time limit.")
        choice = (reply.get("choices") or [{}])[0]
        usage = reply.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
        return Answer(
            key=req.key,
            text=choice.get("text") or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason="length" if finish == "length" else "stop",
            seconds=round(time.monotonic() - started, 4),
        )

    def loglikelihood(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Score texts with `echo` + `logprobs` (servers that do not support it say so)."""
        results = []
        for text in texts:
            reply = self._post("completions", {
                "model": self.model, "prompt": text, "max_tokens": 1, "echo": True,
                "logprobs": 1, "temperature": 0.0,
            }, timeout=self._timeout)
            choice = (reply.get("choices") or [{}])[0]
            logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
            if not logprobs:
                raise EngineError(f"the model server at {self.base_url} does not return prompt log-probabilities, so pair probes cannot be scored there.")
            n_prompt = int((reply.get("usage") or {}).get("prompt_tokens") or len(logprobs))
            # The echo covers the prompt; its first token has no probability.
            values = [v for v in logprobs[1:n_prompt] if v is not None]
            results.append((float(sum(values)), len(values)))
        return results

    def next_token_logprobs(self, prefix: str, bodies: Sequence[str], endings: Sequence[str],
                            candidates: Sequence[str], *, batched: bool = True, top: int = 50,
                            cancel: CancelToken | None = None) -> list[list[list[float | None]]]:
        """Candidates' log-probabilities as the next token, from the server's `top` most likely tokens.

        A server returns only its top tokens, so a candidate outside them is None
        (its probability is small but unknown). Requests run `concurrency` at a time.
        """
        prompts = [(b, e, prefix + body + ending) for b, body in enumerate(bodies) for e, ending in enumerate(endings)]
        results: list[list[list[float | None]]] = [[[None] * len(candidates) for _ in endings] for _ in bodies]
        wanted = {text: i for i, text in enumerate(candidates)}

        def one(prompt: str) -> dict:
            reply = self._post("completions", {
                "model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0,
                "logprobs": int(top), "n": 1,
            }, timeout=self._timeout)
            choice = (reply.get("choices") or [{}])[0]
            tops = (choice.get("logprobs") or {}).get("top_logprobs") or []
            if not tops or not isinstance(tops[0], dict):
                raise EngineError(f"the model server at {self.base_url} does not return token log-probabilities, "
                                  "so it cannot act as a judge.")
            return tops[0]

        workers = self.concurrency if batched else 1
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(prompts) or 1)),
                                thread_name_prefix="auditdesk-http") as pool:
            futures = []
            for b, e, prompt in prompts:
                futures.append((b, e, pool.submit(one, prompt)))
            for b, e, future in futures:
                if cancel is not None and cancel.cancelled:
                    for _, _, f in futures:
                        f.cancel()
                    raise Cancelled("cancelled by the user")
                for token, logprob in future.result().items():
                    c = wanted.get(token)
                    if c is not None and logprob is not None:
                        results[b][e][c] = float(logprob)
        return results

    def close(self) -> None:
        return None
