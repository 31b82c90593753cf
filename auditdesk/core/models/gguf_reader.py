"""A safe, bounded reader for the header of an untrusted GGUF file (metadata + tensor list).

Written from the GGUF spec so that a hostile or broken file gets a one-line error:
every length is checked against hard limits and against the bytes really left in the
file *before* anything is allocated. It never loads tensor data and never executes code.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditdesk.core.errors import AuditDeskError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

# Hard limits. Real models stay far below them (Gemma 3: 262k tokens, ~8 MB of
# metadata; the longest chat templates are tens of KB).
MAX_KEY_BYTES = 65_535
MAX_STRING_BYTES = 4 * 1024 * 1024
MAX_ARRAY_ITEMS = 8 * 1024 * 1024
MAX_METADATA_BYTES = 256 * 1024 * 1024
MAX_NESTING = 2  # an array of arrays at most
MAX_KV_COUNT = 100_000
MAX_TENSORS = 200_000
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32

# GGUF value types -> (struct code, size); 8 = string, 9 = array.
_SCALARS = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}
_NUMPY_DTYPES = {
    0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4",
    6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8",
}
TYPE_STRING = 8
TYPE_ARRAY = 9


class ModelFileError(AuditDeskError):
    """The file is not a GGUF model AuditDesk can read (the message says why and what to do)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header. `shape` is in GGUF/ggml order (ne0 first = row length)."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # relative to the start of the data section
    n_elements: int
    n_bytes: int | None  # None when the type is unknown to the installed gguf package

    @property
    def type_name(self) -> str:
        return ggml_type_name(self.type_id)


@dataclass
class GGUFHeader:
    """Everything in a GGUF file except the tensor data itself."""

    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    metadata_types: dict[str, int]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    metadata_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


def ggml_type_name(type_id: int) -> str:
    """The ggml name of a tensor type id (e.g. 1 -> 'F16', 12 -> 'Q4_K')."""
    try:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(type_id).name
    except (ImportError, ValueError):
        return f"type{type_id}"


def _type_sizes(type_id: int) -> tuple[int, int] | None:
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        return GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    except (ImportError, ValueError, KeyError):
        return None


class _Cursor:
    """Bounds-checked little-endian reads over a memory map."""

    def __init__(self, buf, size: int, name: str) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0
        self.name = name

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise truncated_error(self.name, self.pos + n, self.size)

    def unpack(self, code: str, size: int):
        self.need(size)
        value = struct.unpack_from("<" + code, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        return self.unpack("I", 4)

    def u64(self) -> int:
        return self.unpack("Q", 8)

    def string(self, what: str, limit: int = MAX_STRING_BYTES, *, key: str | None = None) -> str:
        length = self.u64()
        if length > limit:
            # Built only on error: this runs once per token of a 262k-token vocabulary.
            what = f"{what} {_shown(key)}" if key is not None else what
            raise hostile_error(self.name, f"{what} claims {length:,} bytes, over the {limit:,}-byte limit")
        self.need(length)
        raw = bytes(self.buf[self.pos:self.pos + length])
        self.pos += length
        # surrogateescape keeps invalid UTF-8 (some vocabularies have it) byte-exact for hashing.
        return raw.decode("utf-8", "surrogateescape")


def _shown(name: str, limit: int = 60) -> str:
    """A key or tensor name from an untrusted file, safe to put in a one-line message."""
    text = name if len(name) <= limit else name[:limit] + "…"
    return repr(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def truncated_error(name: str, expected: int, found: int) -> ModelFileError:
    return ModelFileError(
        f"{name} is incomplete or corrupted (expected ≥ {expected:,} bytes, found {found:,}); "
        "copy or download the file again."
    )


def hostile_error(name: str, detail: str) -> ModelFileError:
    return ModelFileError(
        f"{name} has a malformed or hostile GGUF header ({detail}); AuditDesk refused to read it."
    )


def read_gguf_header(path) -> GGUFHeader:
    """Read and validate the metadata and tensor list of the GGUF file at `path`."""
    path = Path(path)
    name = path.name
    try:
        file_size = path.stat().st_size
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a GGUF model file; choose the .gguf file inside it.")
    if file_size == 0:
        raise ModelFileError(f"{name} is empty (0 bytes); copy or download the file again.")
    with open(path, "rb") as handle:
        head = handle.read(4096)
        if head[:4] != GGUF_MAGIC:
            raise ModelFileError(
                f"{name} is not a GGUF model file; it looks like {guess_file_kind(head, path)}. "
                "Choose a .gguf file (convert other formats with llama.cpp's converter)."
            )
        if file_size < 24:
            raise truncated_error(name, 24, file_size)
        version = struct.unpack_from("<I", head, 4)[0]
        if version not in SUPPORTED_VERSIONS:
            if struct.unpack_from(">I", head, 4)[0] in SUPPORTED_VERSIONS:
                raise ModelFileError(
                    f"{name} is a big-endian GGUF file, which AuditDesk cannot read; "
                    "use the little-endian (standard) version of the model."
                )
            raise ModelFileError(
                f"{name} uses GGUF version {version}, which AuditDesk cannot read (supported: 2 and 3); "
                "re-convert it with a current llama.cpp."
            )
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, path, file_size, version)


def _parse(buf, path: Path, file_size: int, version: int) -> GGUFHeader:
    name = path.name
    cur = _Cursor(buf, file_size, name)
    cur.pos = 8
    n_tensors = cur.u64()
    n_kv = cur.u64()
    if n_kv > MAX_KV_COUNT:
        raise hostile_error(name, f"{n_kv:,} metadata entries, over the {MAX_KV_COUNT:,} limit")
    if n_tensors > MAX_TENSORS:
        raise hostile_error(name, f"{n_tensors:,} tensors, over the {MAX_TENSORS:,} limit")
    # Every entry needs at least a key length, a type and 1 value byte.
    cur.need(n_kv * 13)

    metadata: dict[str, Any] = {}
    types: dict[str, int] = {}
    kv_start = cur.pos
    for _ in range(n_kv):
        key = cur.string("a metadata key", MAX_KEY_BYTES)
        if key in metadata:
            raise hostile_error(name, f"duplicate metadata key {_shown(key)}")
        value_type = cur.u32()
        metadata[key] = _read_value(cur, value_type, key, depth=0, kv_start=kv_start)
        types[key] = value_type
        if cur.pos - kv_start > MAX_METADATA_BYTES:
            raise hostile_error(name, f"metadata larger than {MAX_METADATA_BYTES:,} bytes")
    metadata_bytes = cur.pos - kv_start

    # Smallest tensor entry: name length, n_dims, type, offset.
    cur.need(n_tensors * 24)
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for _ in range(n_tensors):
        tname = cur.string("a tensor name", MAX_KEY_BYTES)
        if tname in seen:
            raise hostile_error(name, f"duplicate tensor {_shown(tname)}")
        seen.add(tname)
        n_dims = cur.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise hostile_error(name, f"tensor {_shown(tname)} has {n_dims} dimensions")
        shape = tuple(cur.u64() for _ in range(n_dims))
        n_elements = 1
        for dim in shape:
            n_elements *= dim
        if n_elements >= 2**62:
            raise hostile_error(name, f"tensor {_shown(tname)} claims {n_elements:,} elements")
        type_id = cur.u32()
        offset = cur.u64()
        sizes = _type_sizes(type_id)
        n_bytes = None
        if sizes is not None:
            block, type_size = sizes
            if shape[0] % block:
                raise hostile_error(name, f"tensor {_shown(tname)} row of {shape[0]} is not a multiple of its block size {block}")
            n_bytes = n_elements // block * type_size
        tensors.append(TensorInfo(tname, shape, type_id, offset, n_elements, n_bytes))

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise hostile_error(name, f"alignment {alignment!r} is not a power of two")
    data_offset = -(-cur.pos // alignment) * alignment

    header = GGUFHeader(
        path=path, version=version, file_size=file_size, metadata=metadata,
        metadata_types=types, tensors=tensors, alignment=alignment,
        data_offset=data_offset, metadata_bytes=metadata_bytes,
    )
    needed = data_offset if tensors else cur.pos  # padding only precedes tensor data
    for tensor in tensors:
        if tensor.n_bytes is None:
            header.warnings.append(f"tensor {_shown(tensor.name)} has a tensor type ({tensor.type_id}) this gguf package does not know")
            continue
        needed = max(needed, data_offset + tensor.offset + tensor.n_bytes)
    if needed > file_size:
        raise truncated_error(name, needed, file_size)
    return header


def _read_value(cur: _Cursor, value_type: int, key: str, depth: int, kv_start: int) -> Any:
    if value_type in _SCALARS:
        code, size = _SCALARS[value_type]
        return cur.unpack(code, size)
    if value_type == TYPE_STRING:
        return cur.string("the text of", key=key)
    if value_type != TYPE_ARRAY:
        raise hostile_error(cur.name, f"{_shown(key)} has unknown value type {value_type}")
    if depth >= MAX_NESTING:
        raise hostile_error(cur.name, f"{_shown(key)} nests arrays deeper than {MAX_NESTING} levels")
    item_type = cur.u32()
    count = cur.u64()
    if count > MAX_ARRAY_ITEMS:
        raise hostile_error(cur.name, f"{_shown(key)} claims {count:,} items, over the {MAX_ARRAY_ITEMS:,} limit")
    if item_type in _SCALARS:
        size = _SCALARS[item_type][1]
        cur.need(count * size)
        import numpy as np

        values = np.frombuffer(cur.buf, dtype=_NUMPY_DTYPES[item_type], count=count, offset=cur.pos).copy()
        cur.pos += count * size
        return values
    # Strings and arrays take at least 8 bytes each (a length); checking first keeps a
    # lying count from driving a long loop.
    min_item = 8 if item_type == TYPE_STRING else 12
    if item_type not in (TYPE_STRING, TYPE_ARRAY):
        raise hostile_error(cur.name, f"{_shown(key)} has items of unknown value type {item_type}")
    cur.need(count * min_item)
    if item_type == TYPE_STRING:
        return _read_string_array(cur, count, key, kv_start)
    items = []
    for _ in range(count):
        items.append(_read_value(cur, item_type, key, depth + 1, kv_start))
        if cur.pos - kv_start > MAX_METADATA_BYTES:
            raise hostile_error(cur.name, f"metadata larger than {MAX_METADATA_BYTES:,} bytes")
    return items


_U64 = struct.Struct("<Q")


def _read_string_array(cur: _Cursor, count: int, key: str, kv_start: int) -> list[str]:
    """The same checks as _Cursor.string, inlined: vocabularies hold 100k+ strings."""
    buf, pos, size = cur.buf, cur.pos, cur.size
    unpack = _U64.unpack_from
    items = []
    append = items.append
    for _ in range(count):
        if pos + 8 > size:
            raise truncated_error(cur.name, pos + 8, size)
        length = unpack(buf, pos)[0]
        pos += 8
        if length > MAX_STRING_BYTES:
            raise hostile_error(
                cur.name, f"an item of {_shown(key)} claims {length:,} bytes, over the {MAX_STRING_BYTES:,}-byte limit"
            )
        end = pos + length
        if end > size:
            raise truncated_error(cur.name, end, size)
        if end - kv_start > MAX_METADATA_BYTES:
            raise hostile_error(cur.name, f"metadata larger than {MAX_METADATA_BYTES:,} bytes")
        append(buf[pos:end].decode("utf-8", "surrogateescape"))
        pos = end
    cur.pos = pos
    return items


def guess_file_kind(head: bytes, path: Path | None = None) -> str:
    """A short guess, for error messages, of what a non-GGUF file really is."""
    if not head:
        return "an empty file"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if path is not None and _zip_is_pytorch(path):
            return "a PyTorch checkpoint (a ZIP archive with a pickle inside)"
        return "a ZIP archive"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "a Python pickle (an old PyTorch checkpoint)"
    if len(head) >= 10 and head[8:10] in (b"{\"", b"{ ", b"{\n"):
        header_len = struct.unpack_from("<Q", head, 0)[0]
        if 2 <= header_len < 100_000_000:
            return "a safetensors file"
    if head[:4] in (b"lmgg", b"tjgg", b"fmgg", b"algg"):
        return "an old GGML/GGJT model from before GGUF"
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed archive"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "a 7-Zip archive"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive"
    if head[:4] == b"\x7fELF":
        return "a program (ELF executable)"
    if head[:4] == b"%PDF":
        return "a PDF document"
    if head[:6] == b"\x89HDF\r\n" or head[:8] == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 file (e.g. a Keras model)"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the model itself (fetch the real file with git lfs pull)"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "a web page (the download probably failed)"
    if re.match(rb'(\{\s*"|\{\s*\}|\[\s*[-\[{"\d\]tfn])', stripped):
        return "a JSON text file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A cut multi-byte character at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return "binary data of an unknown kind"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        return "a text file"
    return "binary data of an unknown kind"


def _zip_is_pytorch(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("data.pkl") for n in archive.namelist()[:1000])
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
