"""Hostile and broken model files (rows 1, 2, 4, 6): refused with a precise sentence, nothing stored."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zipfile

import pytest

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.models.gguf_reader import ModelFileError, read_gguf_header

from .hostile import T_ARRAY, T_STRING, T_UINT32, gguf_file, gguf_string, kv_entry, small_config, small_items, table_counts


def _cli(*args):
    from auditdesk.cli.main import main

    return main(list(args))


# -- row 1: truncated GGUF -----------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_gguf_names_expected_and_found_bytes(tmp_path, tiny_model, keep):
    data = tiny_model.read_bytes()
    cut = tmp_path / "vendor-tuned.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError) as caught:
        read_gguf_header(cut)
    message = str(caught.value)
    assert "vendor-tuned.gguf is incomplete or corrupted (expected ≥ " in message
    expected = int(message.split("expected ≥ ")[1].split(" bytes")[0].replace(",", ""))
    assert expected == len(data)  # the whole original size: the data section is checked too
    assert f"found {cut.stat().st_size:,})" in message


def test_truncated_tuned_file_leaves_nothing_in_the_database(tmp_path, tiny_model):
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    cut = tmp_path / "vendor-tuned.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:4000])
    db = tmp_path / "audit.db"
    with open_store(db) as store:
        with pytest.raises(AuditDeskError, match="incomplete or corrupted"):
            plan_run(small_config(tiny_model, tuned=cut), store, items=small_items())
    assert table_counts(db, "runs", "units", "answers", "models", "packs") == dict.fromkeys(
        ("runs", "units", "answers", "models", "packs"), 0)


def test_truncated_gguf_on_the_command_line_is_one_line(tmp_path, tiny_model, capsys):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:5000])
    db = tmp_path / "cli.db"
    code = _cli("audit", "--base", str(cut), "--tuned", str(tiny_model), "--pack", "quick", "--db", str(db), "--quiet")
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "cut.gguf is incomplete or corrupted (expected ≥ " in err and "found 5,000)" in err
    assert table_counts(db, "runs", "models")["runs"] == 0


# -- row 2: not a GGUF at all ----------------------------------------------------


def _zip_bytes(names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, b"\x80\x02}q\x00.")
    return buf.getvalue()


def _safetensors_bytes():
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\x00" * 8


@pytest.mark.parametrize(("content", "guess"), [
    (b"This is the model card, not the model.\nLicense: MIT\n" * 20, "a text file"),
    (_zip_bytes(["weights.bin"]), "a ZIP archive"),
    (_zip_bytes(["archive/data.pkl", "archive/data/0"]), "a PyTorch checkpoint"),
    (_safetensors_bytes(), "a safetensors file"),
    (b"<!DOCTYPE html><html><body>Sign in to continue</body></html>", "a web page"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "a Git LFS pointer"),
    (b"\x80\x04\x95" + b"\x00" * 64, "a Python pickle"),
], ids=["text", "zip", "pytorch-zip", "safetensors", "html", "lfs-pointer", "pickle"])
def test_non_gguf_named_gguf_is_refused_by_magic_with_a_guess(tmp_path, tiny_model, content, guess):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(content)
    with pytest.raises(ModelFileError) as caught:
        read_gguf_header(fake)
    assert f"model.gguf is not a GGUF model file; it looks like {guess}" in str(caught.value)

    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    db = tmp_path / "audit.db"
    with open_store(db) as store, pytest.raises(AuditDeskError, match="is not a GGUF model file"):
        plan_run(small_config(fake, tuned=tiny_model), store, items=small_items())
    assert table_counts(db, "runs", "models") == {"runs": 0, "models": 0}


def test_pickle_inside_a_zip_is_never_unpickled(tmp_path, monkeypatch):
    # The guess looks at the ZIP's names only; unpickling would run the payload.
    import pickle

    called = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: called.append(a))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: called.append(a))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(_zip_bytes(["archive/data.pkl"]))
    with pytest.raises(ModelFileError):
        read_gguf_header(fake)
    assert called == []


# -- row 4: headers that claim absurd sizes ---------------------------------------


def _hostile_headers():
    yield "string-2^40", gguf_file([kv_entry("general.name", T_STRING, gguf_string(b"x" * 16, claimed=2**40))])
    yield "key-2^40", gguf_file([gguf_string(b"k", claimed=2**40)])
    yield "array-2^62", gguf_file([kv_entry("tokenizer.ggml.tokens", T_ARRAY,
                                            struct.pack("<IQ", T_UINT32, 2**62) + b"\x00" * 64)])
    yield "string-array-2^62", gguf_file([kv_entry("tokenizer.ggml.tokens", T_ARRAY,
                                                   struct.pack("<IQ", T_STRING, 2**62))])
    deep = b"".join(struct.pack("<IQ", T_ARRAY, 1) for _ in range(10_000))
    yield "nesting-10000", gguf_file([kv_entry("deep", T_ARRAY, deep)])
    yield "kv-count-2^63", gguf_file([], n_kv=2**63)
    yield "tensor-count-2^63", gguf_file([], n_tensors=2**63)
    dims = struct.pack("<I", 4) + struct.pack("<QQQQ", 2**40, 2**40, 2**40, 2**40)
    tensor = gguf_string("t") + dims + struct.pack("<IQ", 0, 0)
    yield "tensor-2^160-elements", gguf_file([], n_tensors=1, tail=tensor)


@pytest.mark.parametrize(("name", "content"), list(_hostile_headers()), ids=[n for n, _ in _hostile_headers()])
def test_absurd_header_claims_are_refused_fast_without_allocating(tmp_path, name, content):
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(content)
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(ModelFileError) as caught:
            read_gguf_header(path)
        cpu = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cpu < 1.0  # the bound ("under a second"); the real cost is microseconds
    assert peak < 4 * 1024 * 1024, f"{name}: {peak:,} bytes allocated"
    message = str(caught.value)
    assert path.name in message and ("hostile" in message or "incomplete or corrupted" in message)


# -- row 6: base and tuned that do not belong together ----------------------------


@pytest.fixture(scope="module")
def foreign_model(tmp_path_factory):
    """A tiny llama with other shapes and a larger vocabulary: not made from the tiny base."""
    from auditdesk.core.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("foreign") / "foreign.gguf", n_embd=32, vocab_extra=7, seed=5)


@pytest.fixture(scope="module")
def other_arch_model(tmp_path_factory, tiny_model):
    """The tiny base relabelled as another architecture (every other byte identical)."""
    from gguf import GGUFReader, GGUFWriter

    path = tmp_path_factory.mktemp("arch") / "qwen-labelled.gguf"
    reader = GGUFReader(str(tiny_model))
    writer = GGUFWriter(str(path), "qwen2")
    for field in reader.fields.values():
        if field.name.startswith(("GGUF.", "general.architecture")) or field.name.startswith("llama."):
            continue
        value = field.contents()
        writer.add_key_value(field.name, value, field.types[0], sub_type=field.types[-1] if len(field.types) > 1 else None)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_shape=list(reversed(tensor.shape.tolist())),
                          raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_different_tokenizer_and_shapes_are_shown_before_the_run(tiny_model, foreign_model):
    from auditdesk.core.models.lineage import check_lineage
    from auditdesk.ui.backend import inspect_pair

    verdict = check_lineage(tiny_model, foreign_model)
    assert verdict.severity == "strong" and not verdict.plausibly_derived
    assert {d.what for d in verdict.differences} >= {"tokenizer", "tensor shapes"}
    assert verdict.verdict.startswith("Probably not derived from this base")
    # The window's "check the models" step (the screen shown before a run starts).
    shown = inspect_pair(str(tiny_model), str(foreign_model), False)
    assert shown["lineage"]["severity"] == "strong"
    assert "tokenizers differ" in json.dumps(shown["lineage"])


def test_different_architecture_is_shown_before_the_run(tiny_model, other_arch_model, capsys):
    code = _cli("inspect", str(other_arch_model), "--base", str(tiny_model))
    out = capsys.readouterr().out
    assert "the base is llama, the tuned model is qwen2" in out
    assert "Probably not derived" in out
    assert code == 0  # two full models: a warning for the report, never a refusal


def test_mismatch_is_stated_in_the_report(tmp_path, tiny_model, foreign_model):
    """The report of a run on a mismatched pair says so in its lineage section."""
    from pypdf import PdfReader

    from auditdesk.core.models.lineage import check_lineage
    from auditdesk.core.report import ReportMeta, build_report
    from report_sample import sample_answers, sample_findings

    findings = sample_findings(6)
    findings["models"]["lineage"] = check_lineage(tiny_model, foreign_model).to_dict()
    out = tmp_path / "report.pdf"
    build_report(findings, sample_answers(findings, samples=1), out, meta=ReportMeta())
    text = " ".join((page.extract_text() or "") for page in PdfReader(str(out)).pages)
    text = " ".join(text.split())
    assert "Probably not derived from this base" in text
    assert "the tokenizers differ" in text


def test_a_real_runs_findings_carry_the_lineage_verdict(tmp_path, tiny_model, foreign_model):
    from auditdesk.core.audit_job import run_info
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    with open_store(tmp_path / "audit.db") as store:
        run_id = plan_run(small_config(tiny_model, tuned=foreign_model), store, items=small_items())
        models = run_info(store, run_id)["models"]
    assert "Probably not derived" in json.dumps(models.get("lineage"))
