"""Shared fixtures: an isolated user home, and tiny real GGUF models written here."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own AUDITDESK_HOME, never the user's real one."""
    home = tmp_path_factory.mktemp("auditdesk-home")
    monkeypatch.setenv("AUDITDESK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a tiny random-weight llama GGUF that llama.cpp really loads."""
    from auditdesk.core.models.tiny import write_tiny_model

    path = tmp_path_factory.mktemp("tiny") / "tiny-base.gguf"
    write_tiny_model(path)
    return path


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory, tiny_model):
    """Path of a tiny LoRA adapter (GGUF) for `tiny_model`."""
    from auditdesk.core.models.tiny import write_tiny_lora

    path = tmp_path_factory.mktemp("tiny-lora") / "tiny-adapter.gguf"
    write_tiny_lora(path, tiny_model)
    return path


@pytest.fixture(scope="module")
def llama_server():
    """Starts a real `python -m llama_cpp.server` on 127.0.0.1: llama_server(model, *args) -> URL.

    Servers are shared within a test module (one per argument list) and stopped at
    its end, so later tests that check for leftover child processes see none.
    """
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("fastapi", reason="llama_cpp.server needs its [server] extras (dev dependency)")
    started: dict[tuple, tuple[str, subprocess.Popen]] = {}

    def start(model, *args: str) -> str:
        key = (str(model), *args)
        if key in started:
            return started[key][0]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "512", "--n_threads", "2", *args],
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
        started[key] = (url, proc)
        return url

    yield start
    for _, proc in started.values():
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
