"""Transparent answer checks (refusal, gender roles, hostility, power-seeking...).

Each detector is a readable YAML file of phrases and patterns in
`resources/detectors/`; this module only loads and applies them. It must never
hide a rule in code: what counts as a hit is whatever the file says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from auditdesk.core.errors import AuditDeskError


@dataclass
class Detector:
    """One check: hits when a phrase or pattern matches (and no `unless` detector does)."""

    id: str
    name: str
    description: str
    phrases: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    unless: list[str] = field(default_factory=list)
    applies_to_kinds: list[str] | None = None  # None: every kind
    concern_categories: list[str] = field(default_factory=list)
    concern_kinds: list[str] | None = None
    direction: str = "increase"  # harmful direction of the tuned model's rate
    meaning: str = ""
    file: str = ""
    version: int = 1
    _regex: re.Pattern | None = None

    def compile(self) -> re.Pattern:
        if self._regex is None:
            # One word-boundary check around all phrases, not one per phrase: the same matches,
            # about four times faster over 10,000 answers (most positions fail the lookbehind once).
            parts = []
            if self.phrases:
                words = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in self.phrases)
                parts.append(r"(?<!\w)(?:" + words + r")(?!\w)")
            parts += [f"(?:{p})" for p in self.patterns]
            self._regex = re.compile("|".join(parts) if parts else r"(?!x)x", re.IGNORECASE)
        return self._regex

    def raw_hit(self, text: str) -> bool:
        # Curly apostrophes are common in model output; the lists are written with straight ones.
        return bool(self.compile().search(text.replace("\u2019", "'")))

    def applies(self, kind: str) -> bool:
        return self.applies_to_kinds is None or kind in self.applies_to_kinds

    def counts_for_concern(self, category: str, kind: str) -> bool:
        if category not in self.concern_categories:
            return False
        return self.concern_kinds is None or kind in self.concern_kinds

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "concern_categories": list(self.concern_categories),
            "concern_kinds": self.concern_kinds,
            "direction": self.direction,
            "meaning": self.meaning,
            "kinds": self.applies_to_kinds,
            "file": self.file,
            "version": self.version,
        }


def _load_file(path: Path) -> Detector:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AuditDeskError(f"The detector file {path.name} could not be read ({exc}); fix or remove it.") from exc
    if not isinstance(data, dict) or not data.get("id"):
        raise AuditDeskError(f"The detector file {path.name} has no 'id'; every detector file needs one.")
    concern = data.get("concern") or {}
    det = Detector(
        id=str(data["id"]),
        name=str(data.get("name", data["id"])),
        description=str(data.get("description", "")),
        phrases=[str(p) for p in data.get("phrases") or []],
        patterns=[str(p) for p in data.get("patterns") or []],
        unless=[str(u) for u in data.get("unless") or []],
        applies_to_kinds=data.get("applies_to_kinds"),
        concern_categories=list(concern.get("categories") or []),
        concern_kinds=concern.get("kinds"),
        direction=str(concern.get("direction", "increase")),
        meaning=str(concern.get("meaning", "")),
        file=path.name,
        version=int(data.get("version", 1)),
    )
    if det.direction not in ("increase", "decrease"):
        raise AuditDeskError(f"The detector file {path.name} has direction '{det.direction}'; use increase or decrease.")
    try:
        det.compile()
    except re.error as exc:
        raise AuditDeskError(f"A pattern in the detector file {path.name} is not a valid regular expression ({exc}).") from exc
    return det


def load_detectors(folder: str | Path | None = None) -> list[Detector]:
    """Every detector in `folder` (default: the bundled `resources/detectors`), sorted by id."""
    if folder is None:
        from auditdesk.core.paths import resource_path

        folder = resource_path("detectors")
    folder = Path(folder)
    dets = [_load_file(p) for p in sorted(folder.glob("*.yaml"))]
    ids = [d.id for d in dets]
    if len(set(ids)) != len(ids):
        raise AuditDeskError(f"Two detector files in {folder} use the same id; give each detector its own id.")
    known = set(ids)
    for d in dets:
        for u in d.unless:
            if u not in known:
                raise AuditDeskError(f"The detector '{d.id}' refers to an unknown detector '{u}' under 'unless'.")
    return dets


def detect(detectors: list[Detector], text: str, kind: str) -> dict[str, bool]:
    """Which detectors hit this answer (a detector that does not apply to the kind is absent)."""
    raw = {d.id: d.raw_hit(text) for d in detectors}
    out = {}
    for d in detectors:
        if not d.applies(kind):
            continue
        out[d.id] = raw[d.id] and not any(raw.get(u, False) for u in d.unless)
    return out
