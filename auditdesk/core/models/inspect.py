"""What a GGUF model file is, read from its header: the "model card" shown before an audit.

Only the bounded header reader touches the file's structure; the SHA-256 is streamed in
chunks (cancellable, cached by path + size + mtime). Never loads weights or runs the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from auditdesk.core.models.gguf_reader import GGUFHeader, ModelFileError, TensorInfo, read_gguf_header
from auditdesk.core.progress import CancelToken, NullReporter, ProgressEvent, ProgressReporter

HASH_CACHE_NAME = "file-hash-cache.json"
HASH_CACHE_VERSION = 1
_HASH_CHUNK = 8 * 1024 * 1024


@dataclass
class ModelCard:
    """The facts about one GGUF file that an auditor checks before trusting it."""

    path: str
    file_name: str
    file_size: int
    sha256: str | None
    gguf_version: int
    architecture: str | None
    architecture_known: bool
    name: str | None
    size_label: str | None
    parameter_count: int
    file_type: str | None  # general.file_type, e.g. "MOSTLY_Q4_K_M"
    quantisation: str | None  # e.g. "Q4_K_M"; the dominant 2-D weight type if undeclared
    tensor_types: dict[str, int]
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    vocab_size: int | None
    tokenizer_model: str | None
    tokenizer_fingerprint: str | None
    chat_template_present: bool
    chat_template_sha256: str | None
    chat_template: str | None
    is_adapter: bool
    adapter_type: str | None = None
    adapter_alpha: float | None = None
    adapter_rank: int | None = None
    adapter_targets: list[str] = field(default_factory=list)
    tensor_count: int = 0
    warnings: list[str] = field(default_factory=list)
    # Not part of to_dict() by default: thousands of entries on real models.
    tensors: list[TensorInfo] = field(default_factory=list, repr=False)

    @property
    def kind(self) -> str:
        return "LoRA adapter" if self.is_adapter else "full model"

    def to_dict(self, *, include_tensors: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data.pop("tensors")
        data["kind"] = self.kind
        if data["chat_template"] is not None:
            # Invalid UTF-8 is kept as surrogates for hashing; JSON needs it visible.
            data["chat_template"] = _printable(data["chat_template"])
        if include_tensors:
            data["tensors"] = [
                {"name": t.name, "shape": list(t.shape), "type": t.type_name, "offset": t.offset}
                for t in self.tensors
            ]
        return data


def inspect_model(path, *, hash_file: bool = True, reporter: ProgressReporter | None = None,
                  token: CancelToken | None = None) -> ModelCard:
    """Read a GGUF file's header (and hash the file) into a ModelCard; raises ModelFileError."""
    path = Path(path)
    header = read_gguf_header(path)
    card = card_from_header(header)
    if hash_file:
        card.sha256 = file_sha256(path, reporter=reporter, token=token)
    return card


def card_from_header(header: GGUFHeader) -> ModelCard:
    """Build a ModelCard from an already-read header (no hashing)."""
    meta = header.metadata
    arch = _text(meta.get("general.architecture"))
    is_adapter = _text(meta.get("general.type")) == "adapter"
    warnings = list(header.warnings)

    def arch_value(suffix: str) -> int | None:
        value = meta.get(f"{arch}.{suffix}") if arch else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    tokens = meta.get("tokenizer.ggml.tokens")
    merges = meta.get("tokenizer.ggml.merges")
    vocab_size = len(tokens) if isinstance(tokens, list) else arch_value("vocab_size")
    template = meta.get("tokenizer.chat_template")
    template = template if isinstance(template, str) else None

    type_counts = Counter(t.type_name for t in header.tensors)
    matrix_types = Counter(t.type_name for t in header.tensors if len(t.shape) >= 2 and t.shape[1] > 1)
    file_type = _file_type_name(meta.get("general.file_type"))
    # Files are usually mixed (Q4_K_M keeps some tensors in Q5_0/Q6_K); the declared
    # file type is the name people know, the dominant matrix type the fallback.
    if file_type and file_type.startswith(("MOSTLY_", "ALL_")):
        quantisation = file_type.split("_", 1)[1]
    else:
        quantisation = matrix_types.most_common(1)[0][0] if matrix_types else None

    adapter_targets: list[str] = []
    adapter_rank = None
    if is_adapter:
        for tensor in header.tensors:
            if tensor.name.endswith(".lora_a"):
                adapter_targets.append(tensor.name[: -len(".lora_a")])
                if len(tensor.shape) >= 2:
                    adapter_rank = int(tensor.shape[1])
        if not adapter_targets:
            warnings.append("the adapter contains no LoRA tensors (names ending in .lora_a / .lora_b)")

    known = _architecture_known(arch)
    if arch is None:
        warnings.append("the file names no architecture (general.architecture is missing)")
    elif not known:
        warnings.append(f"architecture '{arch}' is unknown to the installed gguf package; llama.cpp may refuse it")

    alpha = meta.get("adapter.lora.alpha")
    return ModelCard(
        path=str(header.path),
        file_name=header.path.name,
        file_size=header.file_size,
        sha256=None,
        gguf_version=header.version,
        architecture=arch,
        architecture_known=known,
        name=_text(meta.get("general.name")),
        size_label=_text(meta.get("general.size_label")),
        parameter_count=sum(t.n_elements for t in header.tensors),
        file_type=file_type,
        quantisation=quantisation,
        tensor_types=dict(type_counts.most_common()),
        context_length=arch_value("context_length"),
        embedding_length=arch_value("embedding_length"),
        block_count=arch_value("block_count"),
        vocab_size=vocab_size,
        tokenizer_model=_text(meta.get("tokenizer.ggml.model")),
        tokenizer_fingerprint=tokenizer_fingerprint(tokens, merges) if tokens is not None else None,
        chat_template_present=template is not None,
        chat_template_sha256=_sha256_text(template) if template is not None else None,
        chat_template=template,
        is_adapter=is_adapter,
        adapter_type=_text(meta.get("adapter.type")) if is_adapter else None,
        adapter_alpha=float(alpha) if isinstance(alpha, (int, float)) else None,
        adapter_rank=adapter_rank,
        adapter_targets=adapter_targets,
        tensor_count=len(header.tensors),
        warnings=warnings,
        tensors=list(header.tensors),
    )


def tokenizer_fingerprint(tokens, merges) -> str:
    """SHA-256 over the token list and the merges, each item length-prefixed so
    ["ab", "c"] and ["a", "bc"] differ."""
    digest = hashlib.sha256()
    for label, items in ((b"tokens", tokens), (b"merges", merges)):
        items = list(items) if items is not None else []
        digest.update(label + len(items).to_bytes(8, "little"))
        for item in items:
            raw = str(item).encode("utf-8", "surrogateescape")
            digest.update(len(raw).to_bytes(8, "little") + raw)
    return digest.hexdigest()


def require_runnable_architecture(card: ModelCard) -> None:
    """Raise ModelFileError when llama.cpp is unlikely to run this file's architecture."""
    if card.architecture is None:
        raise ModelFileError(f"{card.file_name} does not say which model architecture it is; it cannot be run.")
    if not card.architecture_known:
        raise ModelFileError(
            f"{card.file_name} uses the architecture '{card.architecture}', which this AuditDesk's "
            "llama.cpp does not support; update AuditDesk or use a supported model."
        )


def file_sha256(path, *, reporter: ProgressReporter | None = None,
                token: CancelToken | None = None, use_cache: bool = True) -> str:
    """SHA-256 of a file, streamed and cancellable; cached by path + size + mtime.

    `use_cache=False` reads the bytes on disk whatever the cache says (a file
    copied over another with its timestamp preserved would fool the cache).
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    cache = _load_cache()
    hit = cache["files"].get(key)
    if use_cache and hit and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
        return hit["sha256"]

    reporter = reporter or NullReporter()
    digest = hashlib.sha256()
    done = 0
    last_report = 0.0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            if token is not None:
                token.raise_if_cancelled()
            digest.update(chunk)
            done += len(chunk)
            now = time.monotonic()
            if now - last_report >= 0.1 or done == stat.st_size:
                last_report = now
                reporter.progress(ProgressEvent("hash", done, stat.st_size, f"hashing {path.name}"))
    sha = digest.hexdigest()
    cache = _load_cache()  # another process may have written meanwhile
    cache["files"][key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
    _save_cache(cache)
    return sha


def _cache_path() -> Path:
    from auditdesk.core.paths import user_home

    return user_home() / HASH_CACHE_NAME


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
        if data.get("version") == HASH_CACHE_VERSION and isinstance(data.get("files"), dict):
            return data
    except (OSError, ValueError, AttributeError):
        pass  # a missing or damaged cache only costs a re-hash
    return {"version": HASH_CACHE_VERSION, "files": {}}


def _save_cache(cache: dict) -> None:
    target = _cache_path()
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)  # caching is an optimisation; never fail the inspection


def _architecture_known(arch: str | None) -> bool:
    if not arch:
        return False
    try:
        from gguf import MODEL_ARCH_NAMES
    except ImportError:
        return True
    return arch in set(MODEL_ARCH_NAMES.values())


def _file_type_name(value) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        from gguf import LlamaFileType

        return LlamaFileType(value).name
    except (ImportError, ValueError):
        return f"file type {value}"


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
