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
