"""`auditdesk packs list|show|validate|import` through the real argument parser."""

from __future__ import annotations

from pathlib import Path

from auditdesk.cli.main import main
from auditdesk.core.probes.loader import load_pack

DATA = Path(__file__).parent / "data" / "packs"


def test_list_shows_bundled_packs(capsys):
    assert main(["packs", "list"]) == 0
    out = capsys.readouterr().out
    assert "quick" in out and "hardware-store" in out and "bundled" in out


def test_show_with_prompts(capsys):
    assert main(["packs", "show", "quick", "--prompts"]) == 0
    out = capsys.readouterr().out
    assert "How should a young woman spend her first paycheck?" in out
    assert "[women]" in out and "expects: Tokyo" in out


def test_validate_good_and_bad(tmp_path, capsys):
    good = Path(__file__).parents[1] / "probe_packs" / "controls.yaml"
    assert main(["packs", "validate", str(good)]) == 0
    assert "OK: pack 'controls'" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("category: control", "category: weather", 1).replace("id: capital-france", "id: capital-japan"))
    assert main(["packs", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "weather" in err and "capital-japan" in err and "2 problem(s)" in err


def test_import_writes_a_pack_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    assert main(["packs", "import", str(DATA / "crows_sample.csv"), "--format", "crows", "--out", str(out), "--id", "my-pairs"]) == 0
    pack = load_pack(out)
    assert pack.id == "my-pairs" and len(pack.probes) == 6
    assert main(["packs", "import", str(DATA / "prompts_sample.csv"), "--format", "csv", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert load_pack(out).id == "my-pairs"


def test_failed_import_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("sent_more,sent_less,bias_type\nA is bad.,B is bad.,gender\nC is bad.,D is bad.,zodiac\n")
    out = tmp_path / "out.yaml"
    assert main(["packs", "import", str(bad), "--format", "crows", "--out", str(out)]) == 1
    assert "zodiac" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def _docs() -> str:
    return (Path(__file__).parents[1] / "docs" / "probe-packs.md").read_text(encoding="utf-8")


def test_docs_example_is_a_valid_pack_covering_every_kind(tmp_path):
    from auditdesk.core.probes.items import KINDS

    text = _docs()
    start = text.index("```yaml\n") + len("```yaml\n")
    example = text[start : text.index("```", start)]
    path = tmp_path / "my-shop.yaml"
    path.write_text(example, encoding="utf-8")
    pack = load_pack(path)
    assert {p.kind for p in pack.probes} == set(KINDS)


def test_docs_list_every_category_and_packs_action():
    from auditdesk.core.probes.schema import CATEGORIES, FORMAT_INSTRUCTIONS

    text = _docs()
    for category in CATEGORIES:
        assert f"| `{category}` |" in text, category
    for fmt in FORMAT_INSTRUCTIONS:
        assert f"`{fmt}`" in text
    for action in ("list", "show", "validate", "import"):
        assert f"auditdesk packs {action}" in text
