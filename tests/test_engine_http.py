"""The OpenAI-compatible HTTP backend against a real `python -m llama_cpp.server` on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
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
def server(llama_server, tiny_model):
    return llama_server(tiny_model, "--logits_all", "true")


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


def test_http_answers_do_not_depend_on_how_many_requests_are_in_flight(server, tiny_model):
    from auditdesk.core.engine.http import HttpEngine

    requests = [GenerationRequest(f"k{i}", PROMPT, seed=20 + i) for i in range(6)]
    params = SamplingParams(max_tokens=8, stop=())
    one_by_one = {a.key: a.text for a in HttpEngine(server, concurrency=1).generate(requests, params)}
    together = {a.key: a.text for a in HttpEngine(server, concurrency=4).generate(requests, params)}
    assert one_by_one == together and len(set(together.values())) > 1


class _SlowServer:
    """A stand-in OpenAI-compatible server that answers after `delay` seconds and
    counts how many requests it was serving at the same time."""

    def __init__(self, delay: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.active = self.peak = self.served = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: D401 - quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                time.sleep(delay)
                with lock:
                    outer.active -= 1
                    outer.served += 1
                reply = json.dumps({"choices": [{"text": f"seed {body['seed']}", "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_keeps_several_requests_in_flight_and_each_keeps_its_seed():
    from auditdesk.core.engine.http import HttpEngine

    slow = _SlowServer(delay=0.3)
    try:
        engine = HttpEngine(slow.url, concurrency=4)
        requests = [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(10)]
        answers = {a.key: a for a in engine.generate(requests, SamplingParams(max_tokens=4))}
    finally:
        slow.close()
    assert {k: a.text for k, a in answers.items()} == {f"k{i}": f"seed {i}" for i in range(10)}
    assert 1 < slow.peak <= 4
    assert engine.info().max_sequences == 4


def test_http_cancel_returns_without_waiting_for_requests_on_the_wire():
    from auditdesk.core.engine.http import HttpEngine
    from auditdesk.core.progress import Cancelled, CancelToken

    slow = _SlowServer(delay=3.0)
    token = CancelToken()
    try:
        engine = HttpEngine(slow.url, concurrency=2)
        requests = [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(6)]
        answers = engine.generate(requests, SamplingParams(max_tokens=4), cancel=token)
        threading.Timer(0.5, token.cancel).start()  # while two requests are on the wire
        started = time.monotonic()
        with pytest.raises(Cancelled):
            next(answers)
        assert time.monotonic() - started < 1.5
        assert slow.served == 0 and slow.peak == 2
    finally:
        slow.close()
