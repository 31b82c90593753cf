"""The framework mapping: which report section can support which regulatory item, and what it cannot cover.

The mapping is data (a versioned YAML file in `resources/frameworks/`) that an
organisation may replace with its own; this module finds and validates it. It
never turns the mapping into a compliance claim: the report prints it as
supporting evidence with its disclaimer.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from auditdesk.core.errors import AuditDeskError

MAPPING_FORMAT = "auditdesk.framework-mapping"
BUNDLED_MAPPING = ("frameworks", "mapping-v1.yaml")
USER_MAPPING = ("frameworks", "mapping.yaml")
_ITEM_FIELDS = ("ref", "title", "sections", "supports", "cannot_cover")


def mapping_path(explicit: str | os.PathLike | None = None) -> Path:
    """The mapping file to use: the one named, else the organisation's in the AuditDesk home, else the bundled one."""
    from auditdesk.core.paths import resource_path, user_home

    if explicit:
        return Path(explicit).expanduser()
    own = user_home().joinpath(*USER_MAPPING)
    return own if own.is_file() else resource_path(*BUNDLED_MAPPING)


def load_mapping(explicit: str | os.PathLike | None = None) -> dict:
    """Read and check a framework mapping file; AuditDeskError naming the file and the field that is wrong."""
    path = mapping_path(explicit)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditDeskError(f"the framework mapping {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise AuditDeskError(f"the framework mapping {path.name} is not valid YAML: {exc}") from None
    where = path.name
    if not isinstance(data, dict) or data.get("format") != MAPPING_FORMAT:
        raise AuditDeskError(f"{where} is not a framework mapping (it needs `format: {MAPPING_FORMAT}`).")
    for key in ("id", "version", "title", "disclaimer"):
        if not str(data.get(key) or "").strip():
            raise AuditDeskError(f"{where}: the field `{key}` is missing or empty.")
    frameworks = data.get("frameworks")
    if not isinstance(frameworks, list) or not frameworks:
        raise AuditDeskError(f"{where}: `frameworks` must be a list of frameworks, each with `name` and `items`.")
    for i, fw in enumerate(frameworks, 1):
        if not isinstance(fw, dict) or not fw.get("name") or not isinstance(fw.get("items"), list):
            raise AuditDeskError(f"{where}: framework {i} needs a `name` and a list of `items`.")
        for j, item in enumerate(fw["items"], 1):
            missing = [k for k in _ITEM_FIELDS if not item or not item.get(k)] if isinstance(item, dict) else list(_ITEM_FIELDS)
            if missing:
                raise AuditDeskError(f"{where}: {fw['name']}, item {j}: missing {', '.join(missing)}.")
    data["source"] = str(path)
    return data
