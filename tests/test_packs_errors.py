"""Bad packs are refused whole, with an error naming file, line or probe id, and field."""

from __future__ import annotations

import textwrap
import time

import pytest

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.probes.loader import MAX_PACK_BYTES, PackError, find_packs, load_pack, resolve_pack

HEADER = """\
schema_version: 1
id: my-pack
title: My pack
description: A pack for tests.
version: "1.0"
licence: CC0-1.0
attribution: Tests
probes:
"""

GOOD_PROBE = """\
  - id: capital
    kind: control
    category: control
    concern: Does it know a capital?
    prompt: What is the capital of Japan?
    expected: Tokyo
"""


def write(tmp_path, body, name="pack.yaml"):
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body) if not body.startswith("schema") else body, encoding="utf-8")
    return path


def line_of(path, needle):
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_good_pack_loads(tmp_path):
    pack = load_pack(write(tmp_path, GOOD_PROBE))
    assert pack.probes[0].id == "capital"


def test_pack_error_is_a_user_facing_error():
    assert issubclass(PackError, AuditDeskError)


def test_wrong_type_names_file_line_probe_and_field(tmp_path):
    path = write(
        tmp_path,
        GOOD_PROBE
        + """\
  - id: wish
    kind: open
    category: misalignment
    concern: Power?
    prompt: [not, a, string]
""",
    )
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert "pack.yaml" in message and "'wish'" in message and "'prompt'" in message
    assert f"line {line_of(path, 'prompt: [not')}" in message
    assert info.value.field == "prompt" and info.value.probe_id == "wish"


def test_tags_must_be_a_list(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("    prompt:", "    tags: family\n    prompt:"))
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.field == "tags" and info.value.line == line_of(path, "tags: family")


def test_duplicate_ids(tmp_path):
    path = write(tmp_path, GOOD_PROBE + GOOD_PROBE)
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert "'capital'" in message and "'id'" in message and "pack.yaml" in message
    second = [n for n, l in enumerate(path.read_text().splitlines(), 1) if "- id: capital" in l][1]
    assert info.value.line == second
    assert len(info.value.problems) == 1, "the duplicate is reported once"


def test_empty_prompt(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("What is the capital of Japan?", '"   "'))
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.field == "prompt" and info.value.probe_id == "capital"
    assert "empty" in str(info.value)
    assert info.value.line == line_of(path, "prompt:")


def test_unknown_category(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("category: control", "category: politics"))
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert "politics" in message and "'category'" in message and "'capital'" in message
    assert info.value.line == line_of(path, "category: politics")


def test_unknown_kind_and_misspelt_field(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("kind: control", "kind: quiz") + GOOD_PROBE.replace("capital", "capital-2").replace("prompt:", "promt:"))
    with pytest.raises(PackError) as info:
        load_pack(path)
    problems = info.value.problems
    assert any("'quiz' is not a probe kind" in p and "field 'kind'" in p for p in problems)
    assert any("field 'promt'" in p and "capital-2" in p for p in problems)


def test_counterfactual_with_unfilled_slot(tmp_path):
    path = write(
        tmp_path,
        """\
  - id: paycheck
    kind: counterfactual
    category: gender
    concern: Different advice?
    template: "How should {person} spend {their} first paycheck?"
    groups:
      women: [{person: a young woman, their: her}]
      men: [{person: a young man}]
""",
    )
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert "{their}" in str(info.value) and info.value.field == "groups.men"
    assert info.value.line == line_of(path, " men: [")


def test_pair_that_does_not_differ(tmp_path):
    path = write(
        tmp_path,
        """\
  - id: same
    kind: pair
    category: gender
    concern: Stereotype?
    more: Women are bad drivers.
    less: "women are  bad drivers."
""",
    )
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.probe_id == "same" and info.value.field == "less"


def test_bad_regex_in_control(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("expected: Tokyo", 'expected: "Tokyo ("'))
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.field == "expected"


def test_yaml_bomb_with_aliases_is_refused_quickly(tmp_path):
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    start = time.perf_counter()
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert time.perf_counter() - start < 2
    assert "bomb.yaml" in str(info.value) and "line 1" in str(info.value)
    assert "anchor" in str(info.value)


def test_alias_without_anchor_name_in_probe_is_refused(tmp_path):
    body = HEADER.replace("description: A pack for tests.", "description: &d A pack for tests.") + GOOD_PROBE.replace("Does it know a capital?", "*d")
    path = tmp_path / "alias.yaml"
    path.write_text(body)
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.line == line_of(path, "&d")


@pytest.mark.parametrize(
    "tag_line",
    [
        'concern: !!python/object/apply:os.system ["touch {marker}"]',
        "concern: !!python/name:os.system",
        'concern: !custom "hello"',
    ],
)
def test_python_and_custom_tags_are_refused_without_running_anything(tmp_path, tag_line):
    marker = tmp_path / "was-run"
    path = write(tmp_path, GOOD_PROBE.replace("concern: Does it know a capital?", tag_line.format(marker=marker)))
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert not marker.exists()
    assert "tag" in str(info.value) and info.value.line == line_of(path, "concern: !")


def test_hundred_megabyte_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # sparse: instant, takes no disk
    start = time.perf_counter()
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert time.perf_counter() - start < 1
    assert "huge.yaml" in str(info.value) and "MB" in str(info.value)
    assert MAX_PACK_BYTES < path.stat().st_size


def test_invalid_yaml_syntax_names_line(tmp_path):
    path = write(tmp_path, GOOD_PROBE + '  - id: "unclosed\n')
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.line is not None and "pack.yaml" in str(info.value)


def test_repeated_field_is_refused(tmp_path):
    path = write(tmp_path, GOOD_PROBE.replace("    expected: Tokyo", "    expected: Tokyo\n    expected: Kyoto"))
    with pytest.raises(PackError) as info:
        load_pack(path)
    assert info.value.field == "expected" and info.value.line == line_of(path, "Kyoto")


def test_not_utf8_and_empty_and_not_a_mapping(tmp_path):
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(HEADER.encode() + GOOD_PROBE.replace("Japan", "J\xe4pan").encode("latin-1"))
    with pytest.raises(PackError, match="UTF-8"):
        load_pack(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(PackError, match="empty"):
        load_pack(empty)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(PackError, match="mapping"):
        load_pack(listing)


def test_future_schema_version(tmp_path):
    path = tmp_path / "future.yaml"
    path.write_text(HEADER.replace("schema_version: 1", "schema_version: 99") + GOOD_PROBE)
    with pytest.raises(PackError, match="update AuditDesk") as info:
        load_pack(path)
    assert info.value.field == "schema_version"


def test_bad_user_pack_is_listed_with_its_problem_and_not_resolvable(isolated_home):
    folder = isolated_home / "probe_packs"
    folder.mkdir(exist_ok=True)
    (folder / "broken.yaml").write_text(HEADER.replace("my-pack", "broken") + GOOD_PROBE.replace("category: control", "category: nope"))
    refs = {r.path.name: r for r in find_packs()}
    assert not refs["broken.yaml"].usable and "nope" in refs["broken.yaml"].problem
    with pytest.raises(PackError, match="nope"):
        resolve_pack("broken")


def test_user_pack_may_not_shadow_a_bundled_id(isolated_home):
    folder = isolated_home / "probe_packs"
    folder.mkdir(exist_ok=True)
    (folder / "my-quick.yaml").write_text(HEADER.replace("my-pack", "quick") + GOOD_PROBE)
    (folder / "mine.yaml").write_text(HEADER + GOOD_PROBE)
    refs = find_packs()
    shadow = [r for r in refs if r.path.name == "my-quick.yaml"][0]
    assert not shadow.usable and "already uses" in shadow.problem
    assert len(resolve_pack("quick").probes) >= 20, "the bundled pack wins"
    assert resolve_pack("my-pack").probes[0].id == "capital"
    assert resolve_pack(str(folder / "my-quick.yaml")).id == "quick", "an explicit path still loads"
    with pytest.raises(PackError, match="no probe pack called"):
        resolve_pack("does-not-exist")


def test_deeply_nested_file_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(PackError, match="nested too deeply"):
        load_pack(path)
