"""Fixtures of the hostile-input corpus: tiny models whose output head is rigged."""

from __future__ import annotations

import pytest

from .hostile import patch_tiny_model, token_id


@pytest.fixture(scope="session")
def eos_only_model(tmp_path_factory):
    """A tiny model that answers every prompt with end-of-text at once."""
    from auditdesk.core.models.tiny import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("eos") / "eos-only.gguf")
    return patch_tiny_model(path, favour=2)  # </s>


@pytest.fixture(scope="session")
def endless_model(tmp_path_factory):
    """A tiny model that repeats one word forever and never produces end-of-text."""
    from auditdesk.core.models.tiny import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("endless") / "endless.gguf")
    return patch_tiny_model(path, favour=token_id("\u2581the"))
