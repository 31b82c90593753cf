"""Start and stop a real `python -m llama_cpp.server` on 127.0.0.1 for the tests that need one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(model, port: int, *args: str) -> subprocess.Popen:
    """A llama_cpp.server for `model` on 127.0.0.1:port, ready to answer (fails the test if it never is)."""
    pytest.importorskip("fastapi", reason="llama_cpp.server needs its [server] extras (dev dependency)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "512", "--n_threads", "2", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as reply:
                json.loads(reply.read())
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("llama_cpp.server did not start within 60 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
