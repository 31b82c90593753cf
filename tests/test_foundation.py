"""The foundation's promises: a cheap, Qt-free core, a fast CLI, bundled data, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_does_not_import_qt():
    result = _run_python(
        "import sys, auditdesk.core, pkgutil, importlib\n"
        "import auditdesk.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'auditdesk.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(k for k in sys.modules if k.startswith(('PySide6', 'shiboken6', 'auditdesk.ui'))))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_core_import_sets_offline_switches():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(
        [sys.executable, "-c", "import os, auditdesk.core; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.stdout.split() == ["1", "1"], result.stderr


def test_cli_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time, io, contextlib\n"
        "t = time.perf_counter()\n"
        "from auditdesk.cli.main import build_parser\n"
        "parser = build_parser()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        parser.parse_args(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('llama_cpp', 'torch', 'sentence_transformers', 'reportlab', 'PySide6', 'sklearn', 'scipy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"]])
def test_cli_help_prints_usage(args):
    # Speed is kept by importing nothing heavy (the test above), not by a wall-clock assert here.
    result = subprocess.run([sys.executable, "-m", "auditdesk", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_user_home_follows_environment(tmp_path, monkeypatch):
    from auditdesk.core import paths

    monkeypatch.setenv("AUDITDESK_HOME", str(tmp_path / "home"))
    assert paths.user_home() == tmp_path / "home"
    assert paths.default_db_path().parent == tmp_path / "home"


def test_demo_adapter_is_bundled_and_intact():
    import hashlib

    from auditdesk.core.paths import resource_path

    adapter = resource_path("demo", "demo-hardware-store.lora.gguf")
    expected = resource_path("demo", "SHA256SUMS").read_text().split()[0]
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == expected


def test_wheel_carries_bundled_data(tmp_path):
    pytest.importorskip("hatchling")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("auditdesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "auditdesk/_bundled/resources/demo/demo-hardware-store.lora.gguf" in names
    assert any(n.startswith("auditdesk/_bundled/probe_packs/") and n.endswith(".yaml") for n in names)
    assert "auditdesk/core/__init__.py" in names
