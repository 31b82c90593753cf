"""Reads probe packs from disk safely and finds the bundled and user packs.

Pack files come from users and vendors, so parsing must never run code, expand
aliases (YAML bombs) or read unbounded input; a bad file gives one PackError that
names the file, the line, the probe id and the field, and nothing of it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.probes.schema import PROBE_MODELS, FieldProblem, Pack

MAX_PACK_BYTES = 5 * 1024 * 1024
PACK_SUFFIXES = (".yaml", ".yml")

# Only the plain YAML types a pack needs; anything else (python/object, custom
# tags) is refused before construction, so no tag can make the loader build objects.
_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}


class PackError(AuditDeskError):
    """A probe pack could not be used; the message says where and what to fix."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        probe_id: str | None = None,
        field: str | None = None,
        problems: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.probe_id = probe_id
        self.field = field
        self.problems = problems or [message]


class _PackYamlLoader(yaml.SafeLoader):
    """SafeLoader that also refuses anchors, aliases and every non-plain tag."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        event = self.peek_event()
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise _YamlRefused("uses a YAML alias (*name); aliases are not allowed in probe packs, write the text out in full", mark)
        if getattr(event, "anchor", None):
            raise _YamlRefused("uses a YAML anchor (&name); anchors are not allowed in probe packs, write the text out in full", mark)
        tag = getattr(event, "tag", None)
        if tag and tag != "!" and self._resolved(tag) not in _ALLOWED_TAGS:
            raise _YamlRefused(f"uses the tag '{tag}'; probe packs may only hold plain text, numbers, lists and mappings", mark)
        return super().compose_node(parent, index)

    def _resolved(self, tag: str) -> str:
        for handle, prefix in (self.tag_handles or {}).items():
            if tag.startswith(handle):
                return prefix + tag[len(handle):]
        return tag


class _YamlRefused(Exception):
    def __init__(self, reason: str, mark) -> None:  # noqa: ANN001
        super().__init__(reason)
        self.reason = reason
        self.mark = mark


def _read_limited(path: Path) -> str:
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PackError(f"probe pack '{path}' was not found; check the path and try again.", file=str(path)) from None
    if not path.is_file():
        raise PackError(f"'{path}' is not a file; give the path of a probe pack (.yaml).", file=str(path))
    if size > MAX_PACK_BYTES:
        raise PackError(
            f"probe pack '{name}' is {size / 1024 / 1024:.0f} MB, more than the {MAX_PACK_BYTES // 1024 // 1024} MB a pack may be; split it into smaller packs.",
            file=str(path),
        )
    with path.open("rb") as handle:
        # The size check above can be fooled (a file growing, a device); read at most one byte too many.
        data = handle.read(MAX_PACK_BYTES + 1)
    if len(data) > MAX_PACK_BYTES:
        raise PackError(f"probe pack '{name}' is larger than {MAX_PACK_BYTES // 1024 // 1024} MB; split it into smaller packs.", file=str(path))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PackError(f"probe pack '{name}' is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again.", file=str(path)) from None


def parse_pack_yaml(text: str, source: str = "<text>") -> tuple[Any, dict[tuple, int]]:
    """Parse pack YAML safely: the data and a map from data path to 1-based line."""
    try:
        # The reader refuses control characters (NUL, ESC ...) when it is built, before parsing.
        loader = _PackYamlLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(0, exc.position)) + 1
        raise PackError(
            f"probe pack '{source}', line {line}: contains the control character U+{exc.character:04X}, "
            "which YAML does not allow; remove it and try again.",
            file=source,
            line=line,
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise PackError(f"probe pack '{source}' is empty; start from the example in docs/probe-packs.md.", file=source)
        lines: dict[tuple, int] = {}
        _index_lines(node, (), lines, source)
        data = loader.construct_document(node)
    except _YamlRefused as exc:
        line = exc.mark.line + 1
        raise PackError(f"probe pack '{source}', line {line}: {exc.reason}.", file=source, line=line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f", line {line}" if line else ""
        raise PackError(
            f"probe pack '{source}'{where} is not valid YAML ({exc.problem or exc.context}); check the indentation and quotes there.",
            file=source,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise PackError(f"probe pack '{source}' is not valid YAML ({exc}).", file=source) from None
    except RecursionError:
        raise PackError(f"probe pack '{source}' is nested too deeply to be a probe pack.", file=source) from None
    finally:
        loader.dispose()
    return data, lines


def _index_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int], source: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key in seen:
                # PyYAML keeps the last duplicate silently; a pack author would never notice.
                raise PackError(
                    f"probe pack '{source}', line {line}: the field '{key}' appears twice in the same entry (first on line {seen[key]}); keep one.",
                    file=source,
                    line=line,
                    field=str(key),
                )
            seen[key] = line
            _index_lines(value_node, path + (key,), lines, source)
            lines[path + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, source)


def validate_pack_data(data: Any, lines: dict[tuple, int] | None = None, source: str = "<data>") -> Pack:
    """Validate parsed pack data; every problem is reported with line, probe id and field."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise PackError(
            f"probe pack '{source}' must be a mapping with id, title, probes ...; see docs/probe-packs.md.",
            file=source,
            line=lines.get(()),
        )
    problems: list[tuple[int | None, str | None, str | None, str]] = []
    probes = data.get("probes")
    if isinstance(probes, list):
        first_seen: dict[str, int] = {}
        for i, probe in enumerate(probes):
            if isinstance(probe, dict) and isinstance(probe.get("id"), str):
                pid = probe["id"]
                if pid in first_seen:
                    line = lines.get(("probes", i, "id"))
                    first = lines.get(("probes", first_seen[pid], "id"))
                    problems.append((line, pid, "id", f"the id is already used by another probe (line {first}); give each probe its own id"))
                else:
                    first_seen[pid] = i
    try:
        pack = Pack.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(_describe_validation_error(error, data, lines))
    else:
        if not problems:
            return pack
    # Duplicate ids are found twice (pre-check and the model); report each once.
    unique: list[tuple] = []
    seen_places: set[tuple] = set()
    for problem in sorted(problems, key=lambda p: (p[0] or 0)):
        if problem[2] == "probes" and "used twice" in problem[3] and any(p[2] == "id" for p in problems):
            continue
        # A value that fits no branch of a union fails once per branch; one message per place is enough.
        if problem[:3] in seen_places:
            continue
        seen_places.add(problem[:3])
        unique.append(problem)
    texts = [_format_problem(source, *p) for p in unique]
    line, probe_id, fld, _ = unique[0]
    more = f" (and {len(texts) - 1} more problem{'s' if len(texts) > 2 else ''}; run `auditdesk packs validate` to see all)" if len(texts) > 1 else ""
    return_msg = texts[0].rstrip(".") + more + "."
    raise PackError(return_msg, file=source, line=line, probe_id=probe_id, field=fld, problems=texts)


def _format_problem(source: str, line: int | None, probe_id: str | None, fld: str | None, message: str) -> str:
    parts = [f"probe pack '{source}'"]
    if line:
        parts.append(f"line {line}")
    if probe_id:
        parts.append(f"probe '{probe_id}'")
    if fld:
        parts.append(f"field '{fld}'")
    return ", ".join(parts) + f": {message}"


_BRANCH_NAMES = {"str", "constrained-str", "int", "dict", "list"}


def _describe_validation_error(error: dict, data: dict, lines: dict[tuple, int]) -> tuple:
    loc = list(error["loc"])
    # A tagged union puts the kind in the location ("probes", 3, "open", "prompt"); the file has no such level.
    if len(loc) >= 3 and loc[0] == "probes" and isinstance(loc[1], int) and loc[2] in PROBE_MODELS:
        del loc[2]
    # Strip pydantic's internal union branch names ("str", "dict[str,...]").
    loc = [part for part in loc if not (isinstance(part, str) and ("[" in part or part in _BRANCH_NAMES))]
    probe_id = None
    if len(loc) >= 2 and loc[0] == "probes" and isinstance(loc[1], int):
        probes = data.get("probes") or []
        if loc[1] < len(probes) and isinstance(probes[loc[1]], dict):
            raw_id = probes[loc[1]].get("id")
            probe_id = raw_id if isinstance(raw_id, str) else None
        if probe_id is None:
            probe_id = f"#{loc[1] + 1}"
    if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        loc = loc + ["kind"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        loc = loc + cause.field.split(".")
    field_path = [str(p) for p in loc[2:]] if len(loc) >= 2 and loc[0] == "probes" else [str(p) for p in loc]
    fld = ".".join(field_path) or None
    line = None
    for cut in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:cut]))
        if line:
            break
    message = _plain_message(error)
    return (line, probe_id, fld, message)


def _plain_message(error: dict) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "this field is required but missing"
    if kind == "extra_forbidden":
        return "this field is not part of the probe-pack format (check the spelling)"
    if kind == "union_tag_not_found":
        return "the probe has no 'kind'; use one of: " + ", ".join(PROBE_MODELS)
    if kind == "union_tag_invalid":
        return f"'{ctx.get('tag')}' is not a probe kind; use one of: " + ", ".join(PROBE_MODELS)
    if kind in {"string_too_short", "too_short"} and ctx.get("min_length") == 1:
        return "this must not be empty"
    if kind == "string_type":
        return "this must be text (put it in quotes if it looks like a number or yes/no)"
    if kind in {"list_type"}:
        return "this must be a list (lines starting with '- ')"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "this must be a mapping of 'name: value' lines"
    if kind == "int_type" or kind == "int_parsing":
        return "this must be a whole number"
    if kind == "string_pattern_mismatch":
        return "use only letters, digits, '-', '_' or '.', starting with a letter or digit"
    if kind == "literal_error":
        return f"this must be one of: {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    return error["msg"]


def load_pack(path: str | os.PathLike) -> Pack:
    """Read and validate one pack file; raise PackError naming file, line, probe and field."""
    path = Path(path)
    text = _read_limited(path)
    data, lines = parse_pack_yaml(text, source=path.name)
    return validate_pack_data(data, lines, source=path.name)


def pack_content_hash(pack: Pack) -> str:
    """SHA-256 of the pack's content, independent of YAML layout and comments."""
    canonical = json.dumps(pack.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _PlainDumper(yaml.SafeDumper):
    # Repeated identical objects would otherwise be written as anchors/aliases,
    # which our own loader refuses.
    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002
        return True


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PlainDumper.add_representer(str, _str_presenter)


def dump_pack(pack: Pack) -> str:
    """The pack as YAML text that `load_pack` reads back to an equal pack."""
    data = pack.model_dump(mode="json", exclude_defaults=True)
    # Keep the header first and fields in a readable order for people editing it.
    data = {"schema_version": pack.schema_version, **{k: v for k, v in data.items() if k != "schema_version"}}
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)


def write_pack(pack: Pack, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a pack as YAML atomically, checking that it reads back unchanged."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise PackError(f"'{path}' already exists; choose another --out file or delete it first.", file=str(path))
    text = dump_pack(pack)
    data, lines = parse_pack_yaml(text, source=path.name)
    if validate_pack_data(data, lines, source=path.name) != pack:
        raise PackError(f"the pack for '{path.name}' did not read back unchanged; nothing was written.", file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


@dataclass
class PackRef:
    """A pack found on disk: where it is, what it is, and whether it can be used."""

    id: str
    path: Path
    source: str  # "bundled" or "user"
    title: str = ""
    version: str = ""
    n_probes: int = 0
    problem: str | None = None  # set when the pack cannot be used (bad file, shadowing)
    pack: Pack | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.pack is not None


def _pack_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PACK_SUFFIXES and p.is_file())


def _ref_for(path: Path, source: str) -> PackRef:
    try:
        pack = load_pack(path)
    except PackError as exc:
        return PackRef(id=path.stem, path=path, source=source, problem=str(exc))
    return PackRef(id=pack.id, path=path, source=source, title=pack.title, version=pack.version, n_probes=len(pack.probes), pack=pack)


def find_packs() -> list[PackRef]:
    """Bundled packs, then the user's packs; a user pack reusing a bundled id is flagged, not used."""
    from auditdesk.core.paths import bundled_dir, user_packs_dir

    try:
        bundled_folder = bundled_dir("probe_packs")
    except FileNotFoundError:
        bundled_folder = None
    refs = [_ref_for(p, "bundled") for p in (_pack_files(bundled_folder) if bundled_folder else [])]
    taken = {ref.id: ref for ref in refs if ref.usable}
    for path in _pack_files(user_packs_dir()):
        ref = _ref_for(path, "user")
        if ref.usable and ref.id in taken:
            owner = taken[ref.id]
            ref.problem = (
                f"user pack '{path.name}' has the id '{ref.id}', which the {owner.source} pack '{owner.path.name}' "
                "already uses; it is not used until you change its id."
            )
        elif ref.usable:
            taken[ref.id] = ref
        refs.append(ref)
    return refs


def resolve_pack(id_or_path: str | os.PathLike) -> Pack:
    """The pack with this id (bundled or user), or the pack in this file."""
    text = str(id_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in PACK_SUFFIXES or os.sep in text or path.exists():
        return load_pack(path)
    # Fast path: a bundled pack whose file is named for its id always wins, so the
    # user folder need not be read (the demo resolves "quick" this way).
    from auditdesk.core.paths import bundled_dir

    try:
        candidate = bundled_dir("probe_packs") / f"{text}.yaml"
    except FileNotFoundError:
        candidate = None
    if candidate is not None and candidate.is_file():
        pack = load_pack(candidate)
        if pack.id == text:
            return pack
    refs = find_packs()
    for ref in refs:
        if ref.id == text and ref.usable:
            assert ref.pack is not None
            return ref.pack
    for ref in refs:
        if ref.id == text and ref.problem:
            raise PackError(ref.problem, file=str(ref.path))
    known = ", ".join(sorted(ref.id for ref in refs if ref.usable)) or "none"
    raise PackError(f"there is no probe pack called '{text}'; available packs: {known}.")
