"""`auditdesk monitor add|run|list|show|remove|schedule|unschedule`: re-audit a model over time.

A thin shell over `auditdesk.core.monitoring`: monitors live in the audit
database, each run goes through the audit job, and drift is the statistical
comparison with the monitor's previous run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_NEW_CONCERN = 3  # the same code as --fail-on: CI and timers treat both as "look at this"
_STATUS_MARK = {"concerning": "C", "changed": "~", "unchanged": "."}


def register(subparsers: argparse._SubParsersAction) -> None:
    monitor = subparsers.add_parser("monitor", help="re-audit a model over time and follow its drift",
                                    description="Monitors re-audit a tuned (or deployed) model against its base "
                                                "and compare each run with the one before.")
    sub = monitor.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="store a new monitor (what to audit, how often)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--base", metavar="BASE.gguf", help="the base model file (with --base-server: its name there)")
    tuned = add.add_mutually_exclusive_group()
    tuned.add_argument("--tuned", metavar="TUNED.gguf",
                       help="the tuned model file (with --tuned-server: its name on that server)")
    tuned.add_argument("--lora", metavar="ADAPTER.gguf", help="a LoRA adapter for the base model")
    add.add_argument("--base-server", metavar="URL", help="an OpenAI-compatible server that runs the base model")
    add.add_argument("--tuned-server", metavar="URL", help="an OpenAI-compatible server that runs the tuned model")
    add.add_argument("--pack", action="append", required=True, metavar="PACK", help="probe pack id or file (repeatable)")
    add.add_argument("--every", default=None, metavar="INTERVAL",
                     help="how often `monitor schedule` runs it: 30m, 12h, 7d, 2w")
    add.add_argument("--reference", type=int, default=None, metavar="RUN",
                     help="the stored run the first monitored run is compared with")
    from auditdesk.cli.audit import add_setting_options
    from auditdesk.core.audit_job import AuditConfig

    add_setting_options(add, AuditConfig(base_model=""))
    _db_option(add)
    add.set_defaults(func=add_command)

    run = sub.add_parser("run", help="audit once now and compare with the previous run")
    run.add_argument("name", metavar="NAME")
    run.add_argument("--summary", type=Path, default=None, metavar="FILE",
                     help="where to write the outcome (JSON; a .txt beside it); default in the AuditDesk home")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    from auditdesk.cli.ci import add_ci_options

    add_ci_options(run)
    _db_option(run)
    run.set_defaults(func=run_command)

    listing = sub.add_parser("list", help="every monitor with its last result")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _db_option(listing)
    listing.set_defaults(func=list_command)

    show = sub.add_parser("show", help="a monitor's timeline: per run, each category's status")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print JSON")
    _db_option(show)
    show.set_defaults(func=show_command)

    schedule = sub.add_parser("schedule", help="run the monitor on a timer (systemd user timer, or a crontab line)")
    schedule.add_argument("name", metavar="NAME")
    schedule.add_argument("--every", default=None, metavar="INTERVAL",
                          help="interval (default: the monitor's --every): 30m, 12h, 7d, 2w")
    schedule.add_argument("--dir", type=Path, default=None,
                          help="write the systemd units here (default ~/.config/systemd/user)")
    schedule.add_argument("--cron", action="store_true", help="print a crontab line instead of writing systemd units")
    _db_option(schedule)
    schedule.set_defaults(func=schedule_command)

    unschedule = sub.add_parser("unschedule", help="remove the monitor's systemd units (and say how to stop them)")
    unschedule.add_argument("name", metavar="NAME")
    unschedule.add_argument("--dir", type=Path, default=None,
                            help="the folder the units were written to (default ~/.config/systemd/user)")
    unschedule.set_defaults(func=unschedule_command)

    report = sub.add_parser("report", help="the monitoring report PDF: timeline, last change, fingerprints")
    report.add_argument("name", metavar="NAME")
    report.add_argument("--pdf", type=Path, required=True, metavar="FILE", help="where to write the PDF")
    _db_option(report)
    report.set_defaults(func=report_command)

    remove = sub.add_parser("remove", help="delete a monitor and its timeline (its audit runs stay)")
    remove.add_argument("name", metavar="NAME")
    _db_option(remove)
    remove.set_defaults(func=remove_command)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help="audit database (default: in the AuditDesk home)")


def add_command(args) -> int:
    from auditdesk.cli.audit import setting_values
    from auditdesk.core.audit_job import AuditConfig
    from auditdesk.core.monitoring.monitors import add_monitor
    from auditdesk.core.store import open_store

    config = AuditConfig(base_model=args.base or "", tuned_model=args.tuned, lora_adapter=args.lora,
                         packs=list(args.pack), base_server=args.base_server, tuned_server=args.tuned_server,
                         **setting_values(args))
    with open_store(args.db) as store:
        monitor = add_monitor(store, args.name, config, every=args.every, reference_run=args.reference)
    every = f", every {monitor.every}" if monitor.every else ""
    print(f"Monitor {monitor.name} added{every}. Run it with `auditdesk monitor run {monitor.name}`"
          + (f"; `auditdesk monitor schedule {monitor.name}` runs it on a timer." if monitor.every else "."))
    return 0


def summary_paths(name: str, summary: Path | None) -> tuple[Path, Path]:
    """The outcome files of a monitor run: JSON and text (default: AUDITDESK_HOME/monitors/NAME/last-run.*)."""
    from auditdesk.core.paths import user_home

    json_path = summary or user_home() / "monitors" / name / "last-run.json"
    return json_path, json_path.with_suffix(".txt")


def run_command(args) -> int:
    from auditdesk.cli.audit import stored_findings
    from auditdesk.cli.ci import ci_gate
    from auditdesk.cli.progress import ProgressBar
    from auditdesk.core.monitoring.monitors import get_monitor, run_monitor
    from auditdesk.core.store import open_store

    with open_store(args.db) as store:
        get_monitor(store, args.name)  # a wrong name is one line, before anything runs
        with ProgressBar(quiet=args.quiet) as reporter:
            outcome = run_monitor(store, args.name, reporter=reporter)
        gate = ci_gate(stored_findings(store, outcome.run_id), fail_on=args.fail_on, junit=args.junit,
                       suite=f"AuditDesk monitor {args.name}, run {outcome.run_id}")
    json_path, text_path = summary_paths(args.name, args.summary)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(outcome.to_dict(), indent=2) + "\n", encoding="utf-8")
    text_path.write_text(outcome.summary_text() + "\n", encoding="utf-8")
    print(outcome.summary_text())
    print(f"Summary: {json_path}", file=sys.stderr)
    if outcome.new_concerns or outcome.swapped:
        return EXIT_NEW_CONCERN
    return gate


def list_command(args) -> int:
    from auditdesk.core.monitoring.monitors import list_monitors
    from auditdesk.core.store import open_store

    with open_store(args.db) as store:
        monitors = list_monitors(store)
    if args.json:
        print(json.dumps(monitors, indent=2))
        return 0
    if not monitors:
        print("No monitors yet; add one with `auditdesk monitor add`.")
        return 0
    print(f"{'NAME':<24} {'EVERY':<6} {'RUNS':>4} {'LAST RUN':>8}  {'WHEN':<20} LAST RESULT")
    for m in monitors:
        result = "-" if m["last_run"] is None else (
            "NEW CONCERN: " + ", ".join(m["last_new_concerns"]) if m["last_new_concerns"]
            else "concerning: " + ", ".join(m["last_concerning"]) if m["last_concerning"] else "nothing concerning")
        print(f"{m['name']:<24} {m['every'] or '-':<6} {m['runs']:>4} {m['last_run'] or '-':>8}  "
              f"{(m['last_time'] or '-')[:19]:<20} {result}")
    return 0


def show_command(args) -> int:
    from auditdesk.core.monitoring.monitors import timeline
    from auditdesk.core.store import open_store

    with open_store(args.db) as store:
        data = timeline(store, args.name)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    config = data["config"]
    tuned = config.get("lora_adapter") or config.get("tuned_server") or config.get("tuned_model")
    print(f"Monitor {data['monitor']}: {Path(str(tuned)).name} against {Path(str(config.get('base_model'))).name}"
          + (f", every {data['every']}" if data["every"] else "")
          + (f", reference run {data['reference_run']}" if data["reference_run"] else ""))
    if not data["runs"]:
        print(f"No runs yet; `auditdesk monitor run {data['monitor']}` makes the first.")
        return 0
    runs = data["runs"][-12:]
    print("\nPer run, each category against the base (left) and its drift since the run before (right):")
    print("C concerning, ~ changed, . unchanged, - not compared\n")
    print(f"{'RUN':<32}" + "".join(f"{r['run_id']:>8}" for r in runs))
    for category in data["categories"]:
        cells = "".join(f"{_STATUS_MARK.get(r['audit'].get(category), '-'):>6}"
                        f"{_STATUS_MARK.get(r['drift'].get(category), '-'):>2}" for r in runs)
        print(f"{category[:31]:<32}{cells}")
    print(f"{'new concerns':<32}" + "".join(f"{len(r['new_concerns']):>8}" for r in runs))
    return 0


def remove_command(args) -> int:
    from auditdesk.core.monitoring.monitors import remove_monitor
    from auditdesk.core.store import open_store

    with open_store(args.db) as store:
        remove_monitor(store, args.name)
    print(f"Removed monitor {args.name}; its audit runs stay in the database.")
    return 0


def schedule_command(args) -> int:
    from auditdesk.core.errors import AuditDeskError
    from auditdesk.core.monitoring.monitors import get_monitor, parse_every
    from auditdesk.core.monitoring.schedule import schedule_monitor
    from auditdesk.core.paths import default_db_path
    from auditdesk.core.store import open_store

    db = Path(args.db or default_db_path()).resolve()
    with open_store(db) as store:
        monitor = get_monitor(store, args.name)
    seconds = parse_every(args.every) or monitor.every_seconds
    if not seconds:
        raise AuditDeskError(f"Monitor {args.name} has no interval; give one, for example --every 7d.")
    done = schedule_monitor(args.name, db, seconds, unit_dir=args.dir, cron=args.cron)
    if done.kind == "cron":
        print("systemd is not running here (or --cron was given); add this line to your crontab:\n")
        print(done.cron_line + "\n")
    else:
        for path in done.files:
            print(f"Wrote {path}")
        print("\nStart the timer with:")
    for command in done.commands:
        print(f"  {command}")
    return 0


def unschedule_command(args) -> int:
    from auditdesk.core.monitoring.schedule import unschedule_monitor

    done = unschedule_monitor(args.name, unit_dir=args.dir)
    for path in done.files:
        print(f"Removed {path}")
    if not done.files:
        print(f"No systemd units of monitor {args.name} were found.")
    print("Then:" if done.files else "If you scheduled it with cron:")
    for command in done.commands:
        print(f"  {command}")
    return 0


def report_command(args) -> int:
    from auditdesk.core.report.monitoring_pdf import build_monitoring_report
    from auditdesk.core.store import open_store

    with open_store(args.db) as store:
        path = build_monitoring_report(store, args.name, args.pdf)
    print(f"Report: {path}")
    return 0
