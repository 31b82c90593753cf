"""`auditdesk packs`: list, show, validate and import probe packs.

A thin layer over auditdesk.core.probes; it prints and sets exit codes, and never
writes a pack that did not validate.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "packs",
        help="list, show, check and import probe packs",
        description="Probe packs are the question sets an audit asks. See docs/probe-packs.md for the format.",
    )
    sub = parser.add_subparsers(dest="packs_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])

    p_list = sub.add_parser("list", help="list bundled and user probe packs", description="List the bundled packs and the packs in your user folder.")
    p_list.set_defaults(func=cmd_list)

    p_show = sub.add_parser("show", help="show the probes of a pack", description="Show a pack's details and its probes.")
    p_show.add_argument("pack", metavar="PACK", help="a pack id (see `auditdesk packs list`) or the path of a pack file")
    p_show.add_argument("--prompts", action="store_true", help="print every prompt exactly as it is sent to the models")
    p_show.set_defaults(func=cmd_show)

    p_validate = sub.add_parser("validate", help="check a pack file and list every problem", description="Check a pack file against the probe-pack format.")
    p_validate.add_argument("file", metavar="FILE", help="the pack file (.yaml) to check")
    p_validate.set_defaults(func=cmd_validate)

    p_import = sub.add_parser(
        "import",
        help="turn a CrowS-Pairs CSV, BBQ JSONL or prompt CSV into a pack",
        description="Import questions from a file you already have into a pack you can edit.",
    )
    p_import.add_argument("file", metavar="FILE", help="the file to import")
    p_import.add_argument("--format", required=True, choices=["crows", "bbq", "csv"], help="crows: sent_more,sent_less,bias_type CSV; bbq: JSONL; csv: a 'prompt' column")
    p_import.add_argument("--out", required=True, metavar="PACK.yaml", help="where to write the new pack")
    p_import.add_argument("--id", dest="pack_id", help="pack id (default: from the file name)")
    p_import.add_argument("--title", help="pack title")
    p_import.add_argument("--category", help="category for rows that have none")
    p_import.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p_import.set_defaults(func=cmd_import)


def cmd_list(args: argparse.Namespace) -> int:
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import find_packs

    refs = find_packs()
    if not refs:
        print("No probe packs found.")
        return 0
    width = max(len("ID"), *(len(ref.id) for ref in refs))
    print(f"{'ID':<{width}} {'PROBES':>6} {'PROMPTS':>7}  {'SOURCE':<7}  TITLE")
    problems = []
    for ref in refs:
        if ref.usable:
            assert ref.pack is not None
            print(f"{ref.id:<{width}} {ref.n_probes:>6} {len(expand(ref.pack)):>7}  {ref.source:<7}  {ref.title}")
        else:
            print(f"{ref.id:<{width}} {'-':>6} {'-':>7}  {ref.source:<7}  (not usable, see below)")
            problems.append(ref.problem)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from auditdesk.core.probes import expand, expand_probe
    from auditdesk.core.probes.loader import pack_content_hash, resolve_pack

    pack = resolve_pack(args.pack)
    print(f"{pack.title}  [{pack.id} v{pack.version}]")
    print(pack.description)
    print(f"Licence: {pack.licence}. Attribution: {pack.attribution}.")
    print(f"{len(pack.probes)} probes, {len(expand(pack))} prompts; content hash {pack_content_hash(pack)[:16]}")
    print()
    for probe in pack.probes:
        print(f"- {probe.id}  ({probe.kind}, {probe.category})  {probe.concern}")
        if args.prompts:
            for item in expand_probe(pack, probe):
                group = f" [{item.slot_group}]" if item.slot_group else ""
                expected = f"   expects: {item.expected}" if item.expected else ""
                print(f"    {item.variant}{group}: {item.text}{expected}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import PackError, load_pack

    try:
        pack = load_pack(args.file)
    except PackError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the pack was not loaded.", file=sys.stderr)
        return 1
    kinds: dict[str, int] = {}
    for probe in pack.probes:
        kinds[probe.kind] = kinds.get(probe.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    print(f"OK: pack '{pack.id}' v{pack.version}: {len(pack.probes)} probes ({summary}), {len(expand(pack))} prompts.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from auditdesk.core.probes.importers import import_file
    from auditdesk.core.probes.loader import write_pack

    pack = import_file(args.file, args.format, pack_id=args.pack_id, title=args.title, category=args.category)
    path = write_pack(pack, args.out, overwrite=args.force)
    print(f"Wrote {len(pack.probes)} probes to {path} (pack id '{pack.id}'). Edit it, then check it with `auditdesk packs validate {path}`.")
    return 0
