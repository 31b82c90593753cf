"""`auditdesk inspect`: what a GGUF file is, before anyone trusts it.

A thin layer over auditdesk.core.models (inspect, lineage, weights); it prints and
sets exit codes. It never runs a model.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what a GGUF model or adapter file is (and check it against a base)",
        description=(
            "Read a GGUF file's header safely and show its architecture, size, quantisation, "
            "tokenizer fingerprint, chat template and SHA-256. With --base, also check whether "
            "the file is plausibly derived from that base and where its weights changed."
        ),
    )
    parser.add_argument("model", metavar="MODEL.gguf", help="the model or LoRA adapter file to inspect")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--base", metavar="BASE.gguf", help="also check lineage and weight changes against this base model")
    parser.add_argument("--no-hash", action="store_true", help="skip the SHA-256 of the file (faster on very large files)")
    parser.add_argument("--tensors", action="store_true", help="list every tensor (name, shape, type)")
    parser.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from auditdesk.core.models.inspect import inspect_model

    card = inspect_model(args.model, hash_file=not args.no_hash)
    result: dict = {"model": card.to_dict(include_tensors=args.tensors)}
    lineage = changes = None
    if args.base:
        from auditdesk.core.models.pair import inspect_pair

        pair = inspect_pair(args.base, card, hash_files=not args.no_hash)
        lineage, changes = pair.verdict, pair.changes
        result["base"] = pair.base_card.to_dict()
        result["lineage"] = lineage.to_dict()
        if changes:
            result["weight_changes"] = [c.to_dict() for c in changes]
            result["weight_change_per_layer"] = pair.weight_change["layers"]

    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        _print_card(card)
        if lineage is not None:
            _print_lineage(lineage, changes)
    return 0 if lineage is None or lineage.can_run else 2


def _print_card(card) -> None:
    rows = [
        ("File", f"{card.file_name} ({_size(card.file_size)}, GGUF v{card.gguf_version})"),
        ("Kind", card.kind),
        ("Architecture", (card.architecture or "not stated") + ("" if card.architecture_known else " (unknown to llama.cpp)")),
        ("Name", card.name or "-"),
        ("Size label", card.size_label or "-"),
        ("Parameters", f"{card.parameter_count:,}"),
        ("Quantisation", card.quantisation or "-"),
        ("Context length", card.context_length or "-"),
        ("Vocabulary", card.vocab_size or "-"),
        ("Tokenizer", f"{card.tokenizer_model or '-'} (fingerprint {card.tokenizer_fingerprint or '-'})"),
        ("Chat template", f"yes (sha256 {card.chat_template_sha256})" if card.chat_template_present else "none"),
        ("SHA-256", card.sha256 or "not computed"),
    ]
    if card.is_adapter:
        rows += [
            ("Adapter", f"{card.adapter_type or '?'}, rank {card.adapter_rank}, alpha {card.adapter_alpha}"),
            ("Targets", f"{len(card.adapter_targets)} tensors"),
        ]
    for label, value in rows:
        print(f"{label + ':':<16}{value}")
    for warning in card.warnings:
        print(f"Warning:        {warning}")
    if card.chat_template_present:
        print("Chat template text:")
        for line in card.to_dict()["chat_template"].splitlines():
            print(f"    {line}")


def _print_lineage(lineage, changes) -> None:
    print()
    print(f"Lineage ({lineage.severity}): {lineage.verdict}")
    for item in lineage.matched:
        print(f"  same: {item}")
    for diff in lineage.differences:
        print(f"  {diff.severity}: {diff.what}: {diff.detail}")
    if not changes:
        return
    print()
    if hasattr(changes[0], "relative_change"):
        from auditdesk.core.models.weights import changes_by_layer

        print("Relative weight change per layer (‖ΔW‖/‖W‖, sampled rows):")
        for layer, value in changes_by_layer(changes):
            print(f"  {'other' if layer is None else f'layer {layer}':<10}{value:8.4f}")
    else:
        print("Adapter update size per target (‖B·A‖·alpha/rank, relative to the base weight):")
        for update in changes:
            rel = "-" if update.relative_to_base is None else f"{update.relative_to_base:.4f}"
            print(f"  {update.name:<40}{update.update_norm:10.4f}  {rel}")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
