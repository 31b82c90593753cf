"""Property tests (bounded for CI): the pack loader, the GGUF header reader and the report sanitiser.

Each property says what *any* input may lead to: a pack or a PackError; a header or a
ModelFileError; a valid PDF that shows the text. Any other exception is a bug.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditdesk.core.models.gguf_reader import GGUFHeader, ModelFileError, read_gguf_header
from auditdesk.core.probes.loader import PackError, parse_pack_yaml, validate_pack_data
from auditdesk.core.probes.schema import Pack

FUZZ = settings(max_examples=int(os.environ.get("AUDITDESK_FUZZ_EXAMPLES", "80")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- probe packs -----------------------------------------------------------------

PACK_KEYS = ["schema_version", "id", "title", "description", "version", "licence", "attribution", "probes",
             "categories", "tags", "kind", "category", "concern", "prompt", "expected", "variants", "slots",
             "template", "more", "less", "pairs", "notes", "source"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["open", "control", "counterfactual", "pair", "refusal",
                                                          "gender", "1", "1.0", "", "{x}", "x" * 300]))
keys = st.one_of(st.sampled_from(PACK_KEYS), st.text(max_size=12))
json_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=8)), max_leaves=40)


@st.composite
def pack_shaped(draw):
    """Mostly-valid packs with random damage: the inputs that reach deep into validation."""
    probe = st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=10), st.sampled_from(["p1", "p2", "p1"])),
         "kind": st.sampled_from(["open", "control", "counterfactual", "pair", "refusal", "bogus"]),
         "category": st.sampled_from(["gender", "control", "safety", "nope"]),
         "prompt": st.one_of(st.text(max_size=40), st.just(""), st.integers())},
        optional={"concern": st.text(max_size=20), "expected": json_like, "slots": json_like,
                  "variants": json_like, "more": st.text(max_size=10), "less": st.text(max_size=10),
                  "template": st.text(max_size=30), "extra": json_like})
    data = {"schema_version": draw(st.sampled_from([1, 1, 2, "1", None])), "id": draw(st.text(max_size=12)),
            "title": "t", "description": "d", "version": "1.0", "licence": "CC0-1.0", "attribution": "x",
            "probes": draw(st.lists(probe, max_size=4))}
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=2)):
        data.pop(key, None)
    return data


def _outcome_is_typed(text: str) -> None:
    try:
        data, lines = parse_pack_yaml(text, source="fuzz.yaml")
        result = validate_pack_data(data, lines, source="fuzz.yaml")
    except PackError as exc:
        assert "fuzz.yaml" in str(exc)
        return
    assert isinstance(result, Pack)


@FUZZ
@given(st.one_of(json_like, pack_shaped()), st.sampled_from(["yaml", "json"]))
def test_any_data_shape_gives_a_pack_or_a_pack_error(data, syntax):
    text = yaml.safe_dump(data, allow_unicode=True) if syntax == "yaml" else json.dumps(data, default=str)
    _outcome_is_typed(text)


@FUZZ
@given(st.lists(st.sampled_from(list("ab:- \n\t'\"[]{}&*!|>%@`#,?\\") + ["!!python/object:os.system", "&a ", "*a",
                                                                          "\x00", "\ufeff", "probes:", "id:"]),
               max_size=60).map("".join))
def test_any_yaml_text_gives_a_pack_or_a_pack_error(text):
    _outcome_is_typed(text)


# -- GGUF header -------------------------------------------------------------------

_DIR = tempfile.TemporaryDirectory(prefix="auditdesk-fuzz-")


def _read(content: bytes):
    path = Path(_DIR.name) / "fuzz.gguf"
    path.write_bytes(content)
    try:
        header = read_gguf_header(path)
    except ModelFileError as exc:
        assert "fuzz.gguf" in str(exc) or "GGUF" in str(exc)
        assert "\n" not in str(exc)
        return None
    assert isinstance(header, GGUFHeader)
    # A header the reader accepts points its tensor data inside the file (or ends exactly at its end).
    assert 0 < header.data_offset <= header.file_size or not header.tensors
    return header


@FUZZ
@given(st.sampled_from([2, 3]), st.binary(max_size=512))
def test_random_bytes_after_a_valid_magic_give_a_header_or_a_model_file_error(version, rest):
    _read(b"GGUF" + struct.pack("<I", version) + rest)


@pytest.fixture(scope="module")
def tiny_header_bytes(tiny_model):
    from auditdesk.core.models.gguf_reader import read_gguf_header as read

    header = read(tiny_model)
    return tiny_model.read_bytes()[: header.data_offset + 4096]


@FUZZ
@given(data=st.data())
def test_damaged_real_headers_give_a_header_or_a_model_file_error(tiny_header_bytes, data):
    content = bytearray(tiny_header_bytes)
    end = min(len(content), 20_000)  # the metadata and tensor list live in the first KB
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(8, end - 8))
        width = data.draw(st.sampled_from([1, 8]))
        value = data.draw(st.sampled_from([0, 0xFF, 2**31, 2**63, 2**64 - 1, 7]))
        content[pos:pos + width] = (value % 256**width).to_bytes(width, "little")
    _read(bytes(content[: data.draw(st.integers(24, len(content)))]))


# -- report sanitiser ----------------------------------------------------------------

_any_char = st.characters(codec=None, exclude_categories=())  # surrogates included
_hostile_bits = st.sampled_from(["<", ">", "&", '"', "<b>", "</font>", "<br/>", "&amp;", "&#0;", "]]>", "\u202e",
                                 "\u2066", "\x00", "\r\n", "\u2028", "\t", "😀", "中", "م", "\ufeff", "\u0301", "[U+0041]"])
fuzz_text = st.lists(st.one_of(_any_char, _hostile_bits), max_size=80).map("".join)


@pytest.fixture(scope="module")
def fontset():
    from auditdesk.core.report.fonts import register_fonts

    return register_fonts()


def _pdf_of(markup: str, style) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4).build([Paragraph(markup, style)])
    return out.getvalue()


@FUZZ
@given(fuzz_text)
def test_any_unicode_becomes_a_valid_pdf_that_shows_it(fontset, text):
    from pypdf import PdfReader
    from reportlab.lib.styles import ParagraphStyle

    from auditdesk.core.report.fonts import BODY
    from auditdesk.core.report.sanitise import GlyphTally, clean_text, placeholder, to_markup

    tally = GlyphTally()
    markup = to_markup(text, fontset, tally)
    pdf = _pdf_of(markup, ParagraphStyle("fuzz", fontName=BODY, fontSize=9, leading=12, splitLongWords=1))
    reader = PdfReader(io.BytesIO(pdf))
    shown = "".join((page.extract_text() or "") for page in reader.pages)
    for page in reader.pages:
        assert "/Annots" not in page

    plain, _ = clean_text(text)
    expected = "".join(ch if ch == "\n" or fontset.font_for(ch) else placeholder(ord(ch)) for ch in plain)

    def visible(s: str) -> str:
        # Text extraction drops spaces and line breaks and may recompose accents; compare what is drawn.
        # Characters beyond U+FFFF (emoji) are drawn, but reportlab writes their ToUnicode entries as
        # 5-digit hex that no reader maps back (known limitation, docs/security.md), so they are skipped.
        s = unicodedata.normalize("NFC", s)
        return "".join(ch for ch in s if not ch.isspace() and ord(ch) <= 0xFFFF
                       and unicodedata.category(ch) not in ("Mn", "Me", "Cf"))

    # Extraction may reorder right-to-left runs, so every drawn character is counted, not placed.
    missing = Counter(visible(expected)) - Counter(visible(shown))
    assert not missing, (missing, shown)
