"""The evidence manifest: SHA-256 of every file an audit report rests on, plus the settings fingerprint.

The manifest is embedded in the PDF (an attached file) and printed in its
Appendix B, so the report itself says which findings, answers, probe packs and
models it describes. It is computed from what the run stored and the files the
export wrote; it never re-reads model files (they can be many gigabytes and the
store already holds their hashes).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditdesk.core.errors import AuditDeskError

MANIFEST_FORMAT = "auditdesk.evidence-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "auditdesk-manifest.json"

# Run configuration keys that say *where* something was, not what it was: the
# models and packs they point to are fingerprinted by content instead.
_LOCATION_KEYS = frozenset({"label", "base_model", "tuned_model", "lora_adapter", "packs"})


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_fingerprint(*, models: dict[str, str | None], packs: list[dict], sampling: dict | None,
                         engine: dict | None, prompt_format: str | None, tool_version: str | None) -> str:
    """SHA-256 over everything that determines a run's answers; equal settings give equal fingerprints.

    `models` maps a role (base, tuned, adapter) to its SHA-256; `packs` are
    records with `pack_id`, `version` and `content_hash`; `engine` is the run's
    sampling and engine configuration (file locations are left out, since the
    content hashes stand for them).
    """
    canonical = {
        "models": {role: sha for role, sha in sorted(models.items()) if sha},
        "packs": sorted([str(p.get("pack_id")), str(p.get("version")), str(p.get("content_hash"))] for p in packs),
        "sampling": sampling or {},
        "engine": {k: v for k, v in sorted((engine or {}).items()) if k not in _LOCATION_KEYS},
        "prompt_format": prompt_format or "",
        "tool_version": tool_version or "",
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_pack_records(store, run_id: int) -> list[dict]:
    """The probe packs a run used, as the store recorded them (id, version, content hash, source)."""
    return store.query(
        "SELECT p.pack_id, p.version, p.content_hash, p.title, p.source FROM run_packs r "
        "JOIN packs p ON p.content_hash = r.pack_hash WHERE r.run_id = ? ORDER BY p.pack_id", (int(run_id),))


def run_settings_fingerprint(store, run_id: int) -> str:
    """The settings fingerprint of a stored run."""
    run = store.get_run(run_id)
    models = {"base": run.get("base_model_sha256"), "tuned": run.get("tuned_model_sha256"),
              "adapter": run.get("adapter_sha256")}
    return settings_fingerprint(models=models, packs=run_pack_records(store, run_id), sampling=run.get("sampling"),
                                engine=run.get("config"), prompt_format=run.get("prompt_format"),
                                tool_version=run.get("tool_version"))


@dataclass
class PackFile:
    """A probe pack file whose content is the one the run used (or None when it is gone or changed)."""

    record: dict
    path: Path | None
    problem: str = ""

    @property
    def bundle_name(self) -> str:
        suffix = self.path.suffix if self.path else ".yaml"
        return f"packs/{self.record['pack_id']}-{self.record['version']}{suffix}"


def locate_pack_file(record: dict) -> PackFile:
    """Find the file of a pack the run used and check it still has the content the run hashed."""
    from auditdesk.core.probes.loader import PackError, find_packs, load_pack, pack_content_hash

    source = str(record.get("source") or "")
    path: Path | None = None
    candidate = Path(source).expanduser() if source else None
    if candidate is not None and candidate.is_file():
        path = candidate
    else:
        for ref in find_packs():
            if ref.usable and ref.id == record.get("pack_id"):
                path = ref.path
                break
    if path is None:
        return PackFile(record, None, "the pack file is no longer on this computer")
    try:
        same = pack_content_hash(load_pack(path)) == record.get("content_hash")
    except PackError as exc:
        return PackFile(record, None, f"the pack file no longer loads: {exc}")
    if not same:
        return PackFile(record, None, f"{path.name} has changed since the audit")
    return PackFile(record, path)


def build_manifest(store, run_id: int, *, findings_path: Path, answers_path: Path, findings: dict,
                   created: str, pack_files: list[PackFile] | None = None) -> dict:
    """The manifest of a run's evidence, from the store and the findings and answers files just written."""
    from auditdesk import __version__

    run = store.get_run(run_id)
    cards = store.model_cards(run)
    packs = pack_files if pack_files is not None else [locate_pack_file(r) for r in run_pack_records(store, run_id)]
    files = [
        {"role": "findings", "name": findings_path.name, "sha256": file_sha256(findings_path),
         "bytes": findings_path.stat().st_size},
        {"role": "answers", "name": answers_path.name, "sha256": file_sha256(answers_path),
         "bytes": answers_path.stat().st_size},
    ]
    pack_entries = []
    for pf in packs:
        entry = {"pack_id": pf.record.get("pack_id"), "version": pf.record.get("version"),
                 "content_hash": pf.record.get("content_hash")}
        if pf.path is not None:
            entry.update(name=pf.bundle_name, sha256=file_sha256(pf.path))
        else:
            entry["note"] = pf.problem
        pack_entries.append(entry)
    models = {}
    for role in ("base", "tuned"):
        card = cards.get(role) or {}
        models[role] = {"name": Path(str(card.get("path") or card.get("name") or role)).name,
                        "sha256": card.get("sha256"), "kind": card.get("kind"), "server": card.get("server")}
        models[role] = {k: v for k, v in models[role].items() if v not in (None, "")}
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "created": created,
        "run_id": int(run_id),
        "audit_started": run.get("started"),
        "audit_ended": run.get("ended"),
        "auditdesk_version": __version__,
        "settings_fingerprint": run_settings_fingerprint(store, run_id),
        "files": files,
        "probe_packs": pack_entries,
        "models": models,
    }
    scorers = scorer_versions(findings)
    if scorers:
        manifest["scorers"] = scorers
    return manifest


def scorer_versions(findings: dict) -> dict:
    """The judge and harm-scorer versions the findings name, if any (older findings have none)."""
    settings = findings.get("settings") if isinstance(findings.get("settings"), dict) else {}
    found = {}
    for key in ("judge", "judge_version", "judge_model", "harm_scorer", "harm_scorer_version"):
        for source in (settings, findings):
            value = source.get(key)
            if isinstance(value, dict):
                # The findings' harm_scorer block also holds its evaluation: the manifest names it only.
                value = {k: value[k] for k in ("version", "embedding_model", "corpus_sha256", "label") if k in value}
            if value not in (None, "", False, {}):
                found[key] = value
    return found


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as the exact bytes that are embedded and bundled."""
    return (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def check_evidence(manifest: dict, folder: Path) -> list[tuple[bool | None, str]]:
    """Compare the files in `folder` with the manifest: (passed, message) per file; None means not checked."""
    results: list[tuple[bool | None, str]] = []
    entries = [(f.get("role", "file"), f.get("name"), f.get("sha256")) for f in manifest.get("files") or []]
    entries += [("probe pack", p.get("name"), p.get("sha256")) for p in manifest.get("probe_packs") or [] if p.get("name")]
    for role, name, expected in entries:
        path = _inside(folder, str(name or ""))
        if path is None or not path.is_file():
            results.append((False, f"{role} file {name} is missing from the evidence folder"))
            continue
        actual = file_sha256(path)
        if actual == expected:
            results.append((True, f"{role} file {name} matches the manifest (SHA-256 {actual[:16]}…)"))
        else:
            results.append((False, f"{role} file {name} does NOT match the manifest: its SHA-256 is {actual[:16]}…, "
                                   f"the signed manifest says {str(expected)[:16]}…; it was changed or swapped"))
    for role, model in sorted((manifest.get("models") or {}).items()):
        name, expected = model.get("name"), model.get("sha256")
        path = _inside(folder, str(name or ""))
        if not expected or path is None or not path.is_file():
            results.append((None, f"{role} model {name}: not in the evidence folder, not checked"))
            continue
        actual = file_sha256(path)
        results.append((actual == expected, f"{role} model {name} " + (
            "matches the manifest" if actual == expected else f"does NOT match the manifest (SHA-256 {actual[:16]}…)")))
    return results


def _inside(folder: Path, name: str) -> Path | None:
    """`folder/name`, or None for a name that would leave the folder (the manifest is data, not a path to trust)."""
    if not name:
        return None
    path = (folder / name).resolve()
    try:
        path.relative_to(folder.resolve())
    except ValueError:
        return None
    return path


def read_manifest(pdf_bytes: bytes, *, name: str = "the PDF") -> dict:
    """The evidence manifest attached to an AuditDesk report; AuditDeskError for any other PDF."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    if not pdf_bytes.startswith(b"%PDF-"):
        raise AuditDeskError(f"{name} is not a PDF file.")
    if b"%%EOF" not in pdf_bytes[-1024:]:
        raise AuditDeskError(f"{name} is incomplete (truncated): it does not end the way every PDF ends. "
                             "Ask for the file again.")
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
        data = _embedded_file(reader.root, MANIFEST_NAME)
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise AuditDeskError(f"{name} is damaged and cannot be read ({exc}).") from None
    if data is None:
        raise AuditDeskError(f"{name} is not an AuditDesk report: it has no AuditDesk evidence manifest attached.")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuditDeskError(f"the evidence manifest in {name} is damaged.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise AuditDeskError(f"{name} is not an AuditDesk report: its attachment is not an AuditDesk manifest.")
    return manifest


def _embedded_file(root, wanted: str) -> bytes | None:
    names = _deref(root.get("/Names"))
    if names is None or "/EmbeddedFiles" not in names:
        return None
    todo = [_deref(names["/EmbeddedFiles"])]
    while todo:
        node = todo.pop()
        for kid in _deref(node.get("/Kids")) or []:
            todo.append(_deref(kid))
        pairs = list(_deref(node.get("/Names")) or [])
        for key, spec in zip(pairs[::2], pairs[1::2]):
            if str(key) == wanted:
                return _deref(_deref(_deref(spec)["/EF"])["/F"]).data
    return None


def _deref(value):
    return value.get_object() if hasattr(value, "get_object") else value
