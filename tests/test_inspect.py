"""Inspecting untrusted GGUF files: the model card, hashing, and one-line errors for bad files."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import tracemalloc
import zipfile

import pytest

from auditdesk.core.models.gguf_reader import ModelFileError, read_gguf_header
from auditdesk.core.models.inspect import file_sha256, inspect_model, tokenizer_fingerprint
from auditdesk.core.models.tiny import tiny_vocab, write_tiny_model
from auditdesk.core.progress import CancelToken, Cancelled, CollectingReporter


# --- building raw GGUF headers by hand --------------------------------------------

def _s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rejects_quickly_and_small(path, match: str):
    """Reject with ModelFileError without allocating more than a few MB."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match) as info:
            read_gguf_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert "\n" not in str(info.value)
    return str(info.value)


# --- the model card -----------------------------------------------------------------

def test_card_of_the_tiny_model(tiny_model):
    card = inspect_model(tiny_model)
    tokens, _, _ = tiny_vocab()
    assert card.architecture == "llama" and card.architecture_known
    assert card.name == "tiny-llama"
    assert card.kind == "full model" and not card.is_adapter
    assert card.context_length == 512
    assert card.embedding_length == 64 and card.block_count == 2
    assert card.vocab_size == len(tokens)
    assert card.file_type == "ALL_F32" and card.quantisation == "F32"
    assert card.tokenizer_model == "llama"
    assert card.tokenizer_fingerprint == tokenizer_fingerprint(tokens, None)
    assert card.sha256 == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert not card.chat_template_present and card.chat_template is None
    # Parameter count cross-checked against the gguf package's own reader.
    from gguf import GGUFReader

    assert card.parameter_count == sum(int(t.n_elements) for t in GGUFReader(str(tiny_model)).tensors)
    data = json.loads(json.dumps(card.to_dict()))
    assert data["kind"] == "full model" and "tensors" not in data


def test_header_matches_the_gguf_package(tiny_model):
    from gguf import GGUFReader

    header = read_gguf_header(tiny_model)
    reference = GGUFReader(str(tiny_model))
    assert header.data_offset == reference.data_offset
    assert [(t.name, list(t.shape), t.offset) for t in header.tensors] == [
        (t.name, [int(d) for d in t.shape], int(t.data_offset) - reference.data_offset) for t in reference.tensors
    ]


def test_quantised_model_card(tmp_path):
    card = inspect_model(write_tiny_model(tmp_path / "q8.gguf", weight_type="Q8_0"))
    assert card.file_type == "MOSTLY_Q8_0" and card.quantisation == "Q8_0"
    assert card.tensor_types == {"Q8_0": 16, "F32": 5}  # 2 x 7 block matrices + embeddings + head; norms stay F32


def test_chat_template_is_hashed_and_shown(tmp_path, tiny_model):
    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    card = inspect_model(write_tiny_model(tmp_path / "chat.gguf", chat_template=template))
    assert card.chat_template_present and card.chat_template == template
    assert card.chat_template_sha256 == hashlib.sha256(template.encode()).hexdigest()
    assert card.tokenizer_fingerprint == inspect_model(tiny_model).tokenizer_fingerprint


def test_card_of_the_tiny_adapter(tiny_lora):
    card = inspect_model(tiny_lora)
    assert card.is_adapter and card.kind == "LoRA adapter"
    assert card.adapter_type == "lora" and card.adapter_rank == 4 and card.adapter_alpha == 4.0
    assert len(card.adapter_targets) == 14 and "blk.1.ffn_down.weight" in card.adapter_targets
    assert card.tokenizer_fingerprint is None and card.vocab_size is None


def test_tokenizer_fingerprint_is_length_prefixed():
    assert tokenizer_fingerprint(["ab", "c"], None) != tokenizer_fingerprint(["a", "bc"], None)
    assert tokenizer_fingerprint(["a"], ["a b"]) != tokenizer_fingerprint(["a"], None)


# --- hashing ------------------------------------------------------------------------

def test_hash_is_cached_by_path_size_and_mtime(tmp_path, tiny_model, isolated_home):
    path = tmp_path / "copy.gguf"
    path.write_bytes(tiny_model.read_bytes())
    first = CollectingReporter()
    digest = file_sha256(path, reporter=first)
    assert first.events and first.events[-1].done == path.stat().st_size
    assert any(isolated_home.glob("*.json"))
    again = CollectingReporter()
    assert file_sha256(path, reporter=again) == digest and again.events == []
    # Same size, new content and mtime: must be hashed again, not served from cache.
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    import os

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    changed = CollectingReporter()
    assert file_sha256(path, reporter=changed) == hashlib.sha256(bytes(data)).hexdigest() != digest
    assert changed.events


def test_hashing_can_be_cancelled(tiny_model):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        file_sha256(tiny_model, token=token)


def test_damaged_hash_cache_is_ignored(tiny_model, isolated_home):
    (isolated_home / "file-hash-cache.json").write_text("{not json")
    assert file_sha256(tiny_model) == hashlib.sha256(tiny_model.read_bytes()).hexdigest()


# --- files that are not good GGUF -------------------------------------------------

@pytest.mark.parametrize("cut", [2, 10, 30, 2000, -100])
def test_truncated_file_gives_a_precise_error(tmp_path, tiny_model, cut):
    data = tiny_model.read_bytes()
    short = data[:cut] if cut > 0 else data[:cut]
    path = _write(tmp_path, "cut.gguf", short)
    with pytest.raises(ModelFileError) as info:
        read_gguf_header(path)
    message = str(info.value)
    if cut > 4:
        assert "incomplete or corrupted (expected ≥" in message
        assert f"found {len(short):,})" in message
    else:  # too short for even the magic bytes
        assert "cut.gguf" in message


def test_truncated_tensor_data_names_the_full_size(tmp_path, tiny_model):
    data = tiny_model.read_bytes()
    path = _write(tmp_path, "cut.gguf", data[:-1])
    with pytest.raises(ModelFileError, match=f"expected ≥ {len(data):,} bytes, found {len(data) - 1:,}"):
        read_gguf_header(path)


def _pytorch_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": [1, 2]}))
    return path


@pytest.mark.parametrize(
    ("maker", "guess"),
    [
        (lambda p: p.write_text("These are the release notes.\nNothing else.\n"), "a text file"),
        (lambda p: p.write_text("[build-system]\nrequires = []\n"), "a text file"),
        (lambda p: p.write_text('{"model_type": "llama"}'), "JSON"),
        (lambda p: p.write_text("<!DOCTYPE html><html><body>Not found</body></html>"), "web page"),
        (lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n"), "Git LFS pointer"),
        (lambda p: zipfile.ZipFile(p, "w").close(), "a ZIP archive"),
        (_pytorch_zip, "PyTorch checkpoint"),
        (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)), "pickle"),
        (lambda p: p.write_bytes(struct.pack("<Q", 28) + b'{"w":{"dtype":"F32"}}       ' + b"\0" * 16), "safetensors"),
        (lambda p: p.write_bytes(b"tjgg" + b"\1\0\0\0" + b"\0" * 64), "old GGML"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "binary data"),
    ],
)
def test_non_gguf_file_renamed_gguf(tmp_path, maker, guess):
    path = tmp_path / "vendor-model.gguf"
    maker(path)
    with pytest.raises(ModelFileError) as info:
        inspect_model(path)
    message = str(info.value)
    assert message.startswith("vendor-model.gguf is not a GGUF model file")
    assert guess in message and "\n" not in message


def test_empty_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="is empty"):
        read_gguf_header(_write(tmp_path, "empty.gguf", b""))
    with pytest.raises(ModelFileError, match="is a folder"):
        read_gguf_header(tmp_path)
    with pytest.raises(ModelFileError, match="not found"):
        read_gguf_header(tmp_path / "missing.gguf")


@pytest.mark.parametrize("version", [1, 4, 77])
def test_unsupported_version(tmp_path, tiny_model, version):
    data = bytearray(tiny_model.read_bytes())
    data[4:8] = struct.pack("<I", version)
    with pytest.raises(ModelFileError, match=f"GGUF version {version}, which AuditDesk cannot read"):
        read_gguf_header(_write(tmp_path, "v.gguf", bytes(data)))


def test_big_endian_gguf_is_named(tmp_path):
    path = _write(tmp_path, "be.gguf", b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    with pytest.raises(ModelFileError, match="big-endian"):
        read_gguf_header(path)


# --- hostile headers ----------------------------------------------------------------

@pytest.mark.timeout(10)
def test_string_claiming_two_to_the_40_bytes(tmp_path):
    data = _header(0, 1) + struct.pack("<Q", 2**40) + b"general.name" + b"\0" * 64
    message = _rejects_quickly_and_small(_write(tmp_path, "h.gguf", data), "hostile")
    assert "1,099,511,627,776 bytes" in message


@pytest.mark.timeout(10)
def test_string_value_larger_than_the_file(tmp_path):
    # Under the string limit but past the end of the file: a truncation, found cheaply.
    data = _header(0, 1) + _s(b"general.name") + struct.pack("<IQ", 8, 3_000_000) + b"x" * 10
    _rejects_quickly_and_small(_write(tmp_path, "h.gguf", data), "incomplete or corrupted")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("item_type", [4, 8, 9])
def test_array_claiming_two_to_the_62_items(tmp_path, item_type):
    data = _header(0, 1) + _s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, item_type, 2**62) + b"\0" * 64
    message = _rejects_quickly_and_small(_write(tmp_path, "h.gguf", data), "hostile")
    assert "4,611,686,018,427,387,904 items" in message


@pytest.mark.timeout(10)
def test_array_count_under_the_limit_but_past_the_file(tmp_path):
    data = _header(0, 1) + _s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 5_000_000) + _s(b"a") * 3
    _rejects_quickly_and_small(_write(tmp_path, "h.gguf", data), "incomplete or corrupted")


@pytest.mark.timeout(10)
def test_huge_counts_of_entries_and_tensors(tmp_path):
    _rejects_quickly_and_small(_write(tmp_path, "kv.gguf", _header(0, 2**60) + b"\0" * 64), "metadata entries")
    _rejects_quickly_and_small(_write(tmp_path, "t.gguf", _header(2**60, 0) + b"\0" * 64), "tensors, over")
    _rejects_quickly_and_small(_write(tmp_path, "t2.gguf", _header(50_000, 0) + b"\0" * 64), "incomplete or corrupted")


def test_nested_arrays_are_limited(tmp_path):
    nested = struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 1) + struct.pack("<I", 7)
    data = _header(0, 1) + _s(b"x.deep") + struct.pack("<I", 9) + nested
    with pytest.raises(ModelFileError, match="nests arrays deeper"):
        read_gguf_header(_write(tmp_path, "n.gguf", data))
    one_level = struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<II", 7, 8)
    ok = _header(0, 1) + _s(b"x.ok") + struct.pack("<I", 9) + one_level
    header = read_gguf_header(_write(tmp_path, "ok.gguf", ok))
    assert [list(v) for v in header.metadata["x.ok"]] == [[7, 8]]


def test_unknown_value_type_and_duplicate_key(tmp_path):
    bad_type = _header(0, 1) + _s(b"general.name") + struct.pack("<I", 42) + b"\0" * 16
    with pytest.raises(ModelFileError, match="unknown value type 42"):
        read_gguf_header(_write(tmp_path, "t.gguf", bad_type))
    entry = _s(b"general.name") + struct.pack("<I", 8) + _s(b"x")
    with pytest.raises(ModelFileError, match="duplicate metadata key"):
        read_gguf_header(_write(tmp_path, "d.gguf", _header(0, 2) + entry + entry + b"\0" * 16))


def test_tensor_with_too_many_dimensions(tmp_path):
    info = _s(b"w") + struct.pack("<I", 9) + struct.pack("<Q", 1) * 9 + struct.pack("<IQ", 0, 0)
    with pytest.raises(ModelFileError, match="9 dimensions"):
        read_gguf_header(_write(tmp_path, "dims.gguf", _header(1, 0) + info + b"\0" * 64))


def test_minimal_valid_header_without_tensors(tmp_path):
    data = _header(0, 2) + _s(b"general.architecture") + struct.pack("<I", 8) + _s(b"llama")
    data += _s(b"general.alignment") + struct.pack("<II", 4, 64)
    header = read_gguf_header(_write(tmp_path, "m.gguf", data))
    assert header.metadata == {"general.architecture": "llama", "general.alignment": 64}
    assert header.alignment == 64 and header.data_offset % 64 == 0 and header.tensors == []


def test_unknown_architecture_is_flagged(tmp_path):
    from auditdesk.core.models.inspect import require_runnable_architecture

    data = _header(0, 1) + _s(b"general.architecture") + struct.pack("<I", 8) + _s(b"skynet9000")
    card = inspect_model(_write(tmp_path, "u.gguf", data))
    assert card.architecture == "skynet9000" and not card.architecture_known
    assert any("skynet9000" in w for w in card.warnings)
    with pytest.raises(ModelFileError, match="architecture 'skynet9000'"):
        require_runnable_architecture(card)
    require_runnable_architecture(inspect_model(write_tiny_model(tmp_path / "ok.gguf"), hash_file=False))


# --- command line -------------------------------------------------------------------

def test_cli_inspect_json(tiny_model, capsys):
    from auditdesk.cli.main import main

    assert main(["inspect", str(tiny_model), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["architecture"] == "llama"
    assert data["model"]["sha256"] == hashlib.sha256(tiny_model.read_bytes()).hexdigest()


def test_cli_inspect_text_with_base(tiny_model, tiny_lora, capsys):
    from auditdesk.cli.main import main

    assert main(["inspect", str(tiny_lora), "--base", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "LoRA adapter" in out and "Plausibly made for this base" in out
    assert "blk.1.ffn_down.weight" in out


def test_cli_inspect_rejects_non_gguf_in_one_line(tmp_path, capsys):
    from auditdesk.cli.main import main

    path = _write(tmp_path, "notes.gguf", b"just some notes\n")
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a GGUF model file" in err and "a text file" in err


# --- fuzzing: a damaged header only ever gives ModelFileError ------------------------

def test_random_header_damage_only_raises_model_file_errors(tmp_path, tiny_model):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    original = tiny_model.read_bytes()
    header_end = read_gguf_header(tiny_model).data_offset
    target = tmp_path / "fuzz.gguf"

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, header_end - 1), st.integers(0, 255)), min_size=1, max_size=8))
    def damaged(edits):
        data = bytearray(original)
        for position, value in edits:
            data[position] = value
        target.write_bytes(bytes(data))
        try:
            inspect_model(target, hash_file=False)
        except ModelFileError as exc:
            assert "\n" not in str(exc)

    damaged()


def test_token_string_claiming_two_to_the_40_bytes(tmp_path):
    data = _header(0, 1) + _s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + _s(b"a")
    data += struct.pack("<Q", 2**40) + b"\0" * 64
    message = _rejects_quickly_and_small(_write(tmp_path, "h.gguf", data), "an item of 'tokenizer.ggml.tokens'")
    assert "1,099,511,627,776 bytes" in message


def test_metadata_size_limit(tmp_path, monkeypatch):
    from auditdesk.core.models import gguf_reader

    monkeypatch.setattr(gguf_reader, "MAX_METADATA_BYTES", 1000)
    data = _header(0, 1) + _s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 200) + _s(b"token") * 200
    with pytest.raises(ModelFileError, match="metadata larger than 1,000 bytes"):
        read_gguf_header(_write(tmp_path, "big.gguf", data))
    data = _header(0, 2) + (_s(b"a.x") + struct.pack("<I", 8) + _s(b"y" * 600)) + (_s(b"b.x") + struct.pack("<I", 8) + _s(b"y" * 600))
    with pytest.raises(ModelFileError, match="metadata larger than 1,000 bytes"):
        read_gguf_header(_write(tmp_path, "big2.gguf", data))


def test_cli_exit_code_when_the_adapter_does_not_fit(tmp_path, tiny_lora, capsys):
    from auditdesk.cli.main import main

    wider = write_tiny_model(tmp_path / "wide.gguf", n_embd=96)
    assert main(["inspect", str(tiny_lora), "--base", str(wider), "--json", "--no-hash"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["lineage"]["can_run"] is False and data["model"]["sha256"] is None
    assert "weight_changes" not in data
