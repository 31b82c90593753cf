"""`auditdesk demo` and `auditdesk selftest`: the main job end to end on embedded models.

`demo` audits the embedded pair (Gemma 3 270M base vs the same base with the
bundled hardware-store adapter) with the `quick` pack; `selftest` does the same
on a tiny model written on the spot, to check an installation in seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from auditdesk.cli.audit import add_setting_options
    from auditdesk.core.audit_job import demo_config

    demo = subparsers.add_parser(
        "demo",
        help="audit the embedded demo vendor model against its base (a few minutes)",
        description=(
            "Audit the embedded demo pair: the Gemma 3 270M base model against a demo "
            "'vendor' model (the base plus a LoRA adapter trained on hardware-store answers "
            "with injected gender stereotypes). Writes the PDF report, the findings JSON and "
            "the answers CSV into --out and prints where they are."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("audit-output"), help="output folder (default: audit-output)")
    demo.add_argument("--pack", action="append", default=None, metavar="PACK",
                      help="probe pack id or file (default: quick; repeat for several)")
    add_setting_options(demo, demo_config(base_model=""))
    demo.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=run_demo)

    selftest = subparsers.add_parser(
        "selftest",
        help="check this installation with a tiny audit on a model written on the spot",
        description="Write a tiny random model and adapter to a temporary folder and run a real audit on them.",
    )
    selftest.add_argument("--keep", type=Path, default=None, help="keep the outputs in this folder")
    selftest.set_defaults(func=run_selftest)


def run_demo(args: argparse.Namespace) -> int:
    from auditdesk.cli.audit import setting_values
    from auditdesk.core.audit_job import demo_config
    from auditdesk.core.models.defaults import demo_models

    models = demo_models()
    config = demo_config(base_model=str(models.base), lora_adapter=str(models.adapter),
                         **{**setting_values(args), "packs": args.pack or ["quick"]})
    print(f"Base model:  {models.base}", file=sys.stderr)
    print(f"Vendor model: {models.base.name} + {models.adapter.name} (see {models.data_card})", file=sys.stderr)
    return _audit_and_report(config, db=args.db, out=args.out, quiet=args.quiet)


def run_selftest(args: argparse.Namespace) -> int:
    from auditdesk.core.audit_job import AuditConfig
    from auditdesk.core.models.tiny import write_tiny_lora, write_tiny_model

    with tempfile.TemporaryDirectory(prefix="auditdesk-selftest-") as tmp:
        folder = Path(tmp)
        base = write_tiny_model(folder / "tiny-base.gguf")
        adapter = write_tiny_lora(folder / "tiny-adapter.gguf", base)
        config = AuditConfig(base_model=str(base), lora_adapter=str(adapter), packs=["quick"], samples=2,
                             max_tokens=8, n_ctx=512, label="selftest")
        out = args.keep or folder / "out"
        code = _audit_and_report(config, db=folder / "selftest.db", out=out, quiet=True)
    if code == 0:
        print("AuditDesk selftest passed: model loading, generation, storage, analysis and report all work.")
    return code


def _audit_and_report(config, *, db: Path | None, out: Path, quiet: bool) -> int:  # noqa: ANN001
    from auditdesk.cli.audit import run_with_progress
    from auditdesk.core.store import open_store

    with open_store(db) as store:
        return run_with_progress(store, config=config, out=out, quiet=quiet)
