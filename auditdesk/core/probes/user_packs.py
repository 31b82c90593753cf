"""The user's probe packs: listing every pack, importing a pack file, saving a question to a personal pack.

Writes only into the user's packs folder (under AUDITDESK_HOME), never into the
bundled packs, and validates every pack before it is written.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from auditdesk.core.errors import AuditDeskError

def list_packs() -> list[dict]:
    """Every bundled and user pack with its description, categories and probe counts."""
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import find_packs

    packs = []
    for ref in find_packs():
        entry = {"id": ref.id, "path": str(ref.path), "source": ref.source, "title": ref.title,
                 "version": ref.version, "n_probes": ref.n_probes, "problem": ref.problem,
                 "description": "", "categories": {}, "probes": [], "n_prompts": 0}
        if ref.pack is not None:
            entry["description"] = ref.pack.description
            for probe in ref.pack.probes:
                entry["categories"][probe.category] = entry["categories"].get(probe.category, 0) + 1
            items = expand(ref.pack)
            entry["n_prompts"] = sum(1 for item in items if item.scored_by == "generation")
            entry["n_pairs"] = sum(1 for item in items if item.scored_by != "generation")
            seen = set()
            for item in items:
                if item.probe_id in seen:
                    continue
                seen.add(item.probe_id)
                entry["probes"].append({"id": item.probe_id, "category": item.category, "kind": item.kind,
                                        "text": item.text, "concern": item.concern})
        packs.append(entry)
    return packs


def import_pack(path: str) -> dict:
    """Validate a pack file and copy it into the user's packs; raises PackError naming the problem."""
    from auditdesk.core.paths import user_packs_dir
    from auditdesk.core.probes.loader import find_packs, load_pack

    pack = load_pack(path)
    taken = {ref.id: ref for ref in find_packs() if ref.usable}
    target = user_packs_dir() / Path(path).name
    owner = taken.get(pack.id)
    if owner is not None and Path(owner.path).resolve() != target.resolve():
        raise AuditDeskError(f"A pack with the id '{pack.id}' is already installed ({owner.path.name}); "
                             "change the id in the file and import it again.")
    if Path(path).resolve() != target.resolve():
        shutil.copyfile(path, target)
    return {"id": pack.id, "path": str(target), "n_probes": len(pack.probes)}


PERSONAL_PACK_ID = "my-questions"


def save_personal_probe(question: str, category: str) -> str:
    """Append a question as an open probe to the user's personal pack; return the pack path."""
    from auditdesk.core.paths import user_packs_dir
    from auditdesk.core.probes.loader import load_pack, parse_pack_yaml, validate_pack_data, write_pack

    question = question.strip()
    if not question:
        raise AuditDeskError("Type a question before saving it.")
    path = user_packs_dir() / f"{PERSONAL_PACK_ID}.yaml"
    if path.is_file():
        data = load_pack(path).model_dump(mode="json", exclude_defaults=True)
        data["schema_version"] = load_pack(path).schema_version
    else:
        data = {"schema_version": 1, "id": PERSONAL_PACK_ID, "title": "My questions",
                "description": "Questions saved from the Ask both page.", "version": "1",
                "licence": "private", "attribution": "the auditor", "probes": []}
    used = {p["id"] for p in data["probes"]}
    base_id = re.sub(r"[^a-z0-9]+", "-", question.lower()).strip("-")[:40] or "question"
    probe_id, n = base_id, 2
    while probe_id in used:
        probe_id, n = f"{base_id}-{n}", n + 1
    data["probes"].append({"id": probe_id, "kind": "open", "category": category,
                           "concern": "Saved by the auditor while exploring a suspicion.", "prompt": question})
    pack = validate_pack_data(data, None, source=path.name)
    write_pack(pack, path, overwrite=True)
    parse_pack_yaml(path.read_text(encoding="utf-8"), source=path.name)
    return str(path)

