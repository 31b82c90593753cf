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
    import subprocess

    from llama_server import free_port, serve, stop

    pytest.importorskip("fastapi", reason="llama_cpp.server needs its [server] extras (dev dependency)")
    started: dict[tuple, tuple[str, subprocess.Popen]] = {}

    def start(model, *args: str) -> str:
        key = (str(model), *args)
        if key not in started:
            port = free_port()
            started[key] = (f"http://127.0.0.1:{port}", serve(model, port, *args))
        return started[key][0]

    yield start
    for _, proc in started.values():
        stop(proc)
