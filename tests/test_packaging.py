"""Checks of the desktop packaging files that need no PyInstaller build.

The full bundle is built and smoke-tested by packaging/build-linux.sh (minutes);
these tests keep the launcher's dispatch and the desktop metadata honest in the
ordinary test run.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.auditdesk.AuditDesk"
DESKTOP = PACKAGING / "linux" / f"{APP_ID}.desktop"
METAINFO = PACKAGING / "linux" / f"{APP_ID}.metainfo.xml"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


def _run_entry(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACKAGING / "entry.py"), *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_entry_runs_auditdesk_modules_like_python_dash_m(tmp_path):
    # The llama.cpp worker is started as `<exe> -m auditdesk.core.engine.worker`;
    # in the bundle <exe> is entry.py, which must run the module, not the CLI.
    result = _run_entry("-m", "auditdesk.cli.main", "--version", env={"AUDITDESK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("AuditDesk ")


def test_entry_runs_code_like_python_dash_c(tmp_path):
    # The window asks child processes `<exe> -c CODE` (GPU check, analysis).
    result = _run_entry("-c", "import sys; print('child', sys.argv[1:])", "x",
                        env={"AUDITDESK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child ['x']"


def test_entry_refuses_to_run_other_modules(tmp_path):
    result = _run_entry("-m", "http.server", env={"AUDITDESK_HOME": str(tmp_path)})
    assert result.returncode == 2  # the CLI's own usage error, not a web server
    assert "usage: auditdesk" in result.stderr


def test_desktop_file_names_the_gui_and_icon():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(DESKTOP, encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "auditdesk-gui"
    assert entry["Icon"] == APP_ID


def test_metainfo_points_at_the_desktop_file():
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == DESKTOP.name
    assert root.find("icon").text == APP_ID


def test_icons_exist_in_every_size():
    from PIL import Image

    for size in ICON_SIZES:
        path = PACKAGING / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        with Image.open(path) as image:
            assert image.size == (size, size), path
    assert (ROOT / "resources" / "icons" / "auditdesk.svg").is_file()


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_file_validates():
    result = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_metainfo_validates():
    result = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
