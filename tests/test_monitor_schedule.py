"""Scheduling monitors: systemd units that systemd-analyze accepts, whose ExecStart really runs the monitor."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import pytest

from auditdesk.cli.main import main
from auditdesk.core.monitoring.monitors import new_concerns
from auditdesk.core.monitoring.schedule import cron_schedule

SETTINGS = ["--samples", "3", "--max-tokens", "8", "--seed", "1", "--threads", "2", "--n-ctx", "256",
            "--backend", "llama-inproc"]


@pytest.fixture()
def scheduled(tmp_path, tiny_model, tiny_lora, capsys):
    from open_pack import write_pack

    db = tmp_path / "sched dir" / "m.db"  # a space: the unit must quote paths
    db.parent.mkdir()
    assert main(["monitor", "add", "nightly", "--base", str(tiny_model), "--lora", str(tiny_lora),
                 "--pack", str(write_pack(tmp_path)), "--every", "1d", "--db", str(db), *SETTINGS]) == 0
    units = tmp_path / "units"
    assert main(["monitor", "schedule", "nightly", "--dir", str(units), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    return db, units, out


def _service_command(service_text: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart's words and the Environment= entries, unquoted as systemd reads them."""
    env, command = {}, []
    for line in service_text.splitlines():
        if line.startswith("Environment="):
            key, _, value = shlex.split(line.removeprefix("Environment="))[0].partition("=")
            env[key] = value.replace("%%", "%")
        elif line.startswith("ExecStart="):
            command = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line.removeprefix("ExecStart="))]
    return command, env


def test_schedule_writes_units_and_prints_the_systemctl_commands(scheduled):
    db, units, out = scheduled
    names = sorted(p.name for p in units.iterdir())
    assert names == ["auditdesk-monitor-nightly.service", "auditdesk-monitor-nightly.timer"]
    assert "systemctl --user enable --now auditdesk-monitor-nightly.timer" in out
    timer = (units / "auditdesk-monitor-nightly.timer").read_text()
    assert "OnUnitActiveSec=86400s" in timer and "WantedBy=timers.target" in timer
    command, env = _service_command((units / "auditdesk-monitor-nightly.service").read_text())
    assert command[1:6] == ["-m", "auditdesk", "monitor", "run", "nightly"]
    assert command[command.index("--db") + 1] == str(db.resolve())
    assert env["AUDITDESK_HOME"] == os.environ["AUDITDESK_HOME"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(scheduled, tmp_path):
    _, units, _ = scheduled
    files = sorted(str(p) for p in units.iterdir())
    verified = subprocess.run(["systemd-analyze", "verify", *files], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == ""
    # Negative control: the same check refuses a broken service, so it is really checking.
    broken = tmp_path / "broken" / "auditdesk-monitor-nightly.service"
    broken.parent.mkdir()
    broken.write_text((units / broken.name).read_text().replace("ExecStart=", "ExecStart=relative/"))
    shutil.copy(units / "auditdesk-monitor-nightly.timer", broken.parent)
    refused = subprocess.run(["systemd-analyze", "verify", str(broken), str(broken.with_suffix(".timer"))],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0


def test_the_service_command_runs_the_monitor_and_leaves_a_summary(scheduled, tmp_path):
    db, units, _ = scheduled
    command, env = _service_command((units / "auditdesk-monitor-nightly.service").read_text())
    # As a timer starts it: another folder, a bare environment plus the unit's Environment= lines.
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    done = subprocess.run(command, cwd=workdir, env=bare, capture_output=True, text=True, timeout=600)
    summary = os.path.join(env["AUDITDESK_HOME"], "monitors", "nightly", "last-run.json")
    outcome = json.loads(open(summary, encoding="utf-8").read())
    assert done.returncode == (3 if outcome["new_concerns"] else 0), done.stderr
    assert outcome["monitor"] == "nightly" and outcome["run_id"] == 1
    assert os.path.exists(summary.replace(".json", ".txt"))
    again = subprocess.run(command, cwd=workdir, env=bare, capture_output=True, text=True, timeout=600)
    second = json.loads(open(summary, encoding="utf-8").read())
    assert again.returncode == 0, again.stderr
    assert second["compared_with"] == 1 and set(second["drift"].values()) == {"unchanged"}


def test_unschedule_removes_the_units(scheduled, capsys):
    db, units, _ = scheduled
    assert main(["monitor", "unschedule", "nightly", "--dir", str(units)]) == 0
    assert list(units.iterdir()) == []
    assert "systemctl --user disable --now auditdesk-monitor-nightly.timer" in capsys.readouterr().out


def test_cron_line_where_systemd_is_absent(scheduled, capsys):
    db, _, _ = scheduled
    assert main(["monitor", "schedule", "nightly", "--cron", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "monitor run nightly" in l)
    assert line.startswith("0 3 * * * ") and "AUDITDESK_HOME=" in line and "cron.log" in line
    assert shlex.quote(str(db.resolve())) in line


def test_cron_intervals():
    assert cron_schedule(30 * 60) == "*/30 * * * *"
    assert cron_schedule(12 * 3600) == "0 */12 * * *"
    assert cron_schedule(86400) == "0 3 * * *"
    assert cron_schedule(7 * 86400) == "0 3 * * 1"
    assert cron_schedule(3 * 86400) == "0 3 */3 * *"


def test_new_concerns_are_categories_newly_concerning_or_drifting_to_concern():
    before = {"gender": "concerning", "safety": "changed", "misalignment": "unchanged"}
    now = {"gender": "concerning", "safety": "concerning", "misalignment": "unchanged"}
    assert new_concerns(now, before, {}) == ["safety"]
    assert new_concerns(now, before, {"misalignment": "concerning"}) == ["misalignment", "safety"]
    assert new_concerns(before, before, {"gender": "changed"}) == []
    assert new_concerns(now, {}, {}) == ["gender", "safety"]  # a first run: every concern is new
