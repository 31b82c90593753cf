"""Where AuditDesk keeps its data and finds the data it ships.

The user home (database, user probe packs, assembled default model) defaults to
the platform's data folder and moves with `AUDITDESK_HOME`, so tests never touch
a real one. Bundled data is looked up inside the installed package first (a
wheel) and then beside the source tree (an editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "AUDITDESK_HOME"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_SOURCE_ROOT = _PACKAGE_DIR.parent


def user_home() -> Path:
    """The folder that holds the database, user packs and default models."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        home = Path(configured).expanduser()
    else:
        from platformdirs import user_data_path

        home = user_data_path("AuditDesk", appauthor=False)
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_db_path() -> Path:
    """The audit database used when the user names none."""
    return user_home() / "auditdesk.db"


def user_packs_dir() -> Path:
    """Where the user's own probe packs live (searched before nothing is shadowed)."""
    path = user_home() / "probe_packs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Where the default models are assembled."""
    path = user_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundled_dir(name: str) -> Path:
    """A top-level data folder shipped with AuditDesk: `resources` or `probe_packs`."""
    if name not in {"resources", "probe_packs"}:
        raise ValueError(f"unknown bundled folder: {name}")
    installed = _PACKAGE_DIR / "_bundled" / name
    if installed.is_dir():
        return installed
    source = _SOURCE_ROOT / name
    if source.is_dir():
        return source
    raise FileNotFoundError(
        f"AuditDesk's bundled '{name}' folder is missing; reinstall AuditDesk."
    )


def resource_path(*parts: str) -> Path:
    """A file under the bundled `resources/` folder."""
    return bundled_dir("resources").joinpath(*parts)
