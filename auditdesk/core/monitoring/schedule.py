"""Scheduling a monitor with what the platform has: a systemd user service and timer, or a crontab line.

It writes unit files (or prints a line) and never starts, enables or edits
anything itself: the user runs the printed `systemctl --user` commands, or adds
the crontab line, so nothing changes on the machine behind their back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import auditdesk


@dataclass
class Schedule:
    """What `monitor schedule` produced: unit files written, or a crontab line, and the commands to run."""

    kind: str  # "systemd" | "cron"
    files: list[Path] = field(default_factory=list)
    cron_line: str = ""
    commands: list[str] = field(default_factory=list)


def unit_name(monitor: str) -> str:
    """The systemd unit name (without suffix) of a monitor: auditdesk-monitor-NAME."""
    return f"auditdesk-monitor-{monitor}"


def default_unit_dir() -> Path:
    """~/.config/systemd/user (or $XDG_CONFIG_HOME/systemd/user): where systemd looks for user units."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def systemd_available() -> bool:
    """Whether this machine runs systemd (so `systemctl --user` can start a timer)."""
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def run_command(monitor: str, db: Path) -> list[str]:
    """The command a scheduled run executes: this Python and this AuditDesk, the monitor, the database."""
    return [sys.executable, "-m", "auditdesk", "monitor", "run", monitor, "--db", str(Path(db).resolve()), "--quiet"]


def run_environment() -> dict[str, str]:
    """Environment of a scheduled run: the same AuditDesk home and the same AuditDesk package as now.

    A timer starts in another folder with another environment; PYTHONPATH names the
    folder this AuditDesk was imported from, so the run uses the code that scheduled it.
    """
    from auditdesk.core.paths import user_home

    return {"AUDITDESK_HOME": str(user_home()), "PYTHONPATH": str(Path(auditdesk.__file__).resolve().parent.parent)}


def _systemd_quote(arg: str, *, exec_line: bool = True) -> str:
    """One ExecStart (or Environment) word as systemd reads it: '%' (and in ExecStart '$') escaped, quoted if needed."""
    arg = arg.replace("%", "%%")
    if exec_line:
        arg = arg.replace("$", "$$")
    if arg and not any(c in arg for c in ' \t"\'\\;'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(monitor: str, db: Path, every_seconds: int) -> dict[str, str]:
    """{file name: text} of the service (one oneshot monitor run) and the timer that starts it every interval."""
    name = unit_name(monitor)
    environment = "\n".join(f"Environment={_systemd_quote(f'{k}={v}', exec_line=False)}"
                            for k, v in run_environment().items())
    service = f"""\
# Written by `auditdesk monitor schedule {monitor}`; `auditdesk monitor unschedule {monitor}` removes it.
[Unit]
Description=AuditDesk monitor {monitor}: re-audit and compare with the last run

[Service]
Type=oneshot
{environment}
ExecStart={" ".join(_systemd_quote(arg) for arg in run_command(monitor, db))}
# Exit code 3: a new concern (the summary file says which); systemd shows the unit as failed.
"""
    timer = f"""\
# Written by `auditdesk monitor schedule {monitor}`; `auditdesk monitor unschedule {monitor}` removes it.
[Unit]
Description=Run AuditDesk monitor {monitor} every {every_seconds} seconds

[Timer]
OnActiveSec=1min
OnUnitActiveSec={every_seconds}s
AccuracySec=1min
Unit={name}.service

[Install]
WantedBy=timers.target
"""
    return {f"{name}.service": service, f"{name}.timer": timer}


def cron_schedule(every_seconds: int) -> str:
    """The five crontab time fields closest to an interval (cron has no 'every N days' from a start time)."""
    minutes = max(1, every_seconds // 60)
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    if hours < 24:
        return f"0 */{hours} * * *"
    days = hours // 24
    if days == 7:
        return "0 3 * * 1"
    return f"0 3 */{days} * *" if days > 1 else "0 3 * * *"


def cron_line(monitor: str, db: Path, every_seconds: int) -> str:
    """A crontab line that runs the monitor and appends its output to a log in the AuditDesk home."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in run_environment().items())
    log = Path(run_environment()["AUDITDESK_HOME"]) / "monitors" / monitor / "cron.log"
    command = f"{env} {shlex.join(run_command(monitor, db))} >> {shlex.quote(str(log))} 2>&1"
    return f"{cron_schedule(every_seconds)} {command.replace('%', chr(92) + '%')}"


def schedule_monitor(monitor: str, db: Path, every_seconds: int, *, unit_dir: Path | None = None,
                     cron: bool = False) -> Schedule:
    """Write the systemd units (into `unit_dir`, default the user unit folder) or make the crontab line.

    systemd is used when it runs here or when `unit_dir` is given; else (or with
    `cron`) the crontab line is returned for the user to add.
    """
    if cron or (unit_dir is None and not systemd_available()):
        line = cron_line(monitor, db, every_seconds)
        (Path(run_environment()["AUDITDESK_HOME"]) / "monitors" / monitor).mkdir(parents=True, exist_ok=True)
        return Schedule("cron", cron_line=line, commands=["crontab -e   # and add the line above"])
    folder = Path(unit_dir) if unit_dir is not None else default_unit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for file_name, text in systemd_units(monitor, db, every_seconds).items():
        path = folder / file_name
        path.write_text(text, encoding="utf-8")
        files.append(path)
    name = unit_name(monitor)
    return Schedule("systemd", files=files, commands=[
        "systemctl --user daemon-reload", f"systemctl --user enable --now {name}.timer",
        f"systemctl --user list-timers {name}.timer", f"journalctl --user -u {name}.service"])


def unschedule_monitor(monitor: str, *, unit_dir: Path | None = None) -> Schedule:
    """Remove the monitor's unit files; the commands returned stop the timer (and say how to drop a cron line)."""
    folder = Path(unit_dir) if unit_dir is not None else default_unit_dir()
    name = unit_name(monitor)
    removed = []
    for suffix in (".timer", ".service"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            path.unlink()
            removed.append(path)
    commands = [f"systemctl --user disable --now {name}.timer", "systemctl --user daemon-reload"] if removed else []
    commands.append(f"crontab -e   # if you added a cron line: delete the line with `monitor run {monitor} `")
    return Schedule("systemd" if removed else "cron", files=removed, commands=commands)
