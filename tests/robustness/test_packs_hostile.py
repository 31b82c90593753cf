"""Hostile probe packs (row 18): a typed error naming file and field, and nothing of the pack used."""

from __future__ import annotations

import shutil
import textwrap
import time

import pytest

from auditdesk.core.probes.loader import PackError, find_packs, load_pack, resolve_pack

from .hostile import small_config, table_counts

HEADER = """\
schema_version: 1
id: hostile-pack
title: Hostile pack
description: A pack that must be refused.
version: "1.0"
licence: CC0-1.0
attribution: Tests
probes:
"""
GOOD = """\
  - id: fine
    kind: open
    category: gender
    concern: A harmless probe that is valid on its own.
    prompt: How should a busy parent plan the week?
"""


def _bomb() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefghi", "bcdefghij"):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


# (name, file text or None for the 100 MB file, what the error must name)
CORPUS = [
    ("wrong-schema", HEADER.replace("probes:\n", "probes: {fine: yes}\n"), {"field": "probes"}),
    ("unknown-field", HEADER + GOOD.replace("    prompt:", "    promt: typo\n    prompt:"), {"field": "promt", "probe_id": "fine"}),
    ("duplicate-ids", HEADER + GOOD + GOOD, {"field": "id", "probe_id": "fine"}),
    ("empty-prompt", HEADER + GOOD.replace("How should a busy parent plan the week?", '""'), {"field": "prompt", "probe_id": "fine"}),
    ("yaml-bomb", _bomb(), {"text": "anchor"}),
    ("python-tag", HEADER + GOOD.replace("concern: A harmless", "concern: !!python/object/apply:os.system [\"touch {marker}\"]\n    notes: A harmless"), {"text": "tag"}),
    ("python-name", HEADER + GOOD.replace("prompt: How", "prompt: !!python/name:os.system\n    notes: How"), {"text": "tag"}),
    ("hundred-mb", None, {"text": "MB"}),
    ("not-utf8", None, {"text": "not UTF-8"}),
]


def _write(folder, name, text, marker):
    path = folder / f"{name}.yaml"
    if name == "hundred-mb":
        with path.open("wb") as handle:
            handle.truncate(100 * 1024 * 1024)  # sparse: takes no disk
    elif name == "not-utf8":
        path.write_bytes((HEADER + GOOD).encode("utf-8").replace(b"busy", b"b\xffsy"))
    else:
        path.write_text(text.replace("{marker}", str(marker)), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text", "names"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_pack_gives_a_typed_error_with_file_and_field(tmp_path, name, text, names):
    marker = tmp_path / "code-was-run"
    path = _write(tmp_path, name, text, marker)
    started = time.process_time()
    with pytest.raises(PackError) as caught:
        load_pack(path)
    assert time.process_time() - started < 2.0
    error = caught.value
    assert path.name in str(error) and path.name in (error.file or "")
    if "field" in names:
        assert error.field == names["field"]
    if "probe_id" in names:
        assert error.probe_id == names["probe_id"]
    if "text" in names:
        assert names["text"] in str(error)
    assert str(error).count("\n") == 0
    assert not marker.exists()


@pytest.mark.parametrize(("name", "text", "names"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_user_pack_is_never_imported(tmp_path, isolated_home, tiny_model, tiny_lora, name, text, names):
    """Dropped into the user's pack folder it is listed as unusable; an audit naming it stores nothing."""
    from auditdesk.core.errors import AuditDeskError
    from auditdesk.core.paths import user_packs_dir
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.store import open_store

    folder = user_packs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = _write(folder, name, text, tmp_path / "code-was-run")
    refs = [r for r in find_packs() if r.path == path]
    assert len(refs) == 1 and not refs[0].usable and path.name in refs[0].problem
    with pytest.raises(PackError):
        resolve_pack(str(path))

    db = tmp_path / "audit.db"
    with open_store(db) as store, pytest.raises(AuditDeskError):
        plan_run(small_config(tiny_model, lora=tiny_lora, packs=[str(path)]), store)
    assert table_counts(db, "runs", "units", "packs", "models") == {"runs": 0, "units": 0, "packs": 0, "models": 0}


def test_one_bad_probe_refuses_the_whole_file(tmp_path, capsys):
    from auditdesk.cli.main import main

    path = tmp_path / "half-good.yaml"
    path.write_text(HEADER + GOOD + GOOD.replace("id: fine", "id: second").replace("kind: open", "kind: exec"))
    assert main(["packs", "validate", str(path)]) != 0
    err = capsys.readouterr()
    assert "half-good.yaml" in err.out + err.err and "second" in err.out + err.err
