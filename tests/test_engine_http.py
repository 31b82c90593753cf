"""The OpenAI-compatible HTTP backend against a real `python -m llama_cpp.server` on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from auditdesk.core.engine import EngineError, GenerationRequest, ModelSpec, SamplingParams, open_engine

pytest.importorskip("fastapi", reason="llama_cpp.server needs its [server] extras (dev dependency)")

PROMPT = "Question: where are the hammers?\nAnswer:"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "512", "--n_threads", "2", "--logits_all", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=1) as reply:
                json.loads(reply.read())
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_http_backend_answers_and_is_reproducible_by_seed(server, tiny_model):
    engine = open_engine(ModelSpec(path=str(tiny_model), label="remote"), backend="http", url=server)
    requests = [GenerationRequest("a", PROMPT, seed=5), GenerationRequest("b", PROMPT, seed=6)]
    params = SamplingParams(max_tokens=12, stop=())
    first = {a.key: a for a in engine.generate(requests, params)}
    second = {a.key: a for a in engine.generate(requests, params)}
    assert first["a"].text and first["a"].finish_reason == "length"
    assert first["a"].completion_tokens == 12
    assert first["a"].text == second["a"].text
    assert first["a"].text != first["b"].text
    assert engine.info().backend == "http"


def test_http_loglikelihood_is_negative(server, tiny_model):
    engine = open_engine(ModelSpec(path=str(tiny_model)), backend="http", url=server)
    (total, count), = engine.loglikelihood(["That tool is in the hardware store."])
    assert total < 0 and count > 3


def test_unreachable_server_is_a_plain_error(tiny_model):
    engine = open_engine(ModelSpec(path=str(tiny_model)), backend="http", url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(EngineError, match="could not reach"):
        list(engine.generate([GenerationRequest("a", PROMPT, seed=1)], SamplingParams(max_tokens=4)))
