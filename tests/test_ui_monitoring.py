"""The Monitoring page over a real monitor of the tiny models, and the new-concern notice at start."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.gui

SETTINGS = ["--samples", "3", "--max-tokens", "8", "--seed", "1", "--threads", "2", "--n-ctx", "256",
            "--backend", "llama-inproc"]


@pytest.fixture(scope="module")
def monitored_db(tmp_path_factory, tiny_model, tiny_lora):
    from test_monitor import write_pack

    from auditdesk.cli.main import main

    tmp = tmp_path_factory.mktemp("ui-monitor")
    db = tmp / "audit.db"
    assert main(["monitor", "add", "vendor", "--base", str(tiny_model), "--lora", str(tiny_lora), "--every", "7d",
                 "--pack", str(write_pack(tmp)), "--db", str(db), *SETTINGS]) == 0
    for n in range(2):
        assert main(["monitor", "run", "vendor", "--db", str(db), "--quiet", "--summary", str(tmp / f"{n}.json")]) in (0, 3)
    return db


def _window(qtbot, db):
    from auditdesk.ui.app import MainWindow

    win = MainWindow(db)
    qtbot.addWidget(win)
    win.show()
    return win


def test_monitoring_page_lists_monitors_and_draws_the_timeline(qtbot, monitored_db, tmp_path):
    from auditdesk.core.monitoring.monitors import timeline
    from auditdesk.core.store import open_store

    db = tmp_path / "audit.db"
    shutil.copyfile(monitored_db, db)
    win = _window(qtbot, db)
    assert win.go("monitoring")
    page = win.pages["monitoring"]
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=30000)
    row = page.model.row_data(0)
    assert (row["name"], row["every"], row["runs"]) == ("vendor", "7d", 2)
    with open_store(db, read_only=True) as store:
        expected = timeline(store, "vendor")
    qtbot.waitUntil(lambda: "customer-service" in page.timeline.accessibleDescription(), timeout=10000)
    description = page.timeline.accessibleDescription()
    for run in expected["runs"]:
        assert f"run {run['run_id']} {run['audit']['customer-service']}" in description
    assert f"Monitor vendor: audit run {expected['runs'][-1]['run_id']}" in page.summary.toPlainText()
    assert page.timeline.height() > 60
    image = win.grab().toImage()
    assert not image.isNull()
    win.close()


def test_a_new_concern_is_announced_when_the_window_opens(qtbot, monitored_db, tmp_path):
    from auditdesk.core.store import open_store

    quiet = _window(qtbot, monitored_db)
    quiet.notify_monitor_concerns()
    assert not getattr(quiet, "monitor_notice", "")
    quiet.close()
    # UI plumbing only: the stored outcome of the last run is given a new concern, as a scheduled run writes it.
    db = tmp_path / "concern.db"
    shutil.copyfile(monitored_db, db)
    with open_store(db) as store:
        row = store.query("SELECT id, outcome_json FROM monitor_runs ORDER BY id DESC LIMIT 1")[0]
        outcome = {**json.loads(row["outcome_json"]), "new_concerns": ["misalignment"]}
        with store.transaction() as conn:
            conn.execute("UPDATE monitor_runs SET outcome_json = ? WHERE id = ?", (json.dumps(outcome), row["id"]))
    win = _window(qtbot, db)
    win.notify_monitor_concerns()
    assert "New concern found by a monitor — vendor" in win.statusBar().currentMessage()
    assert "misalignment" in win.statusBar().currentMessage()
    win.close()


def test_history_compares_two_audits_with_the_drift_statistics(qtbot, monitored_db, tmp_path):
    """History's "Compare two" once listed how many answer texts differed (with sampling, nearly all);
    it now shows the same drift table as `auditdesk compare`."""
    from PySide6.QtCore import QItemSelectionModel

    from auditdesk.core.monitoring.drift import compare_tuned, drift_lines
    from auditdesk.core.store import open_store

    db = tmp_path / "audit.db"
    shutil.copyfile(monitored_db, db)
    win = _window(qtbot, db)
    assert win.go("history")
    page = win.pages["history"]
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=30000)
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in range(2):
        page.table.selectionModel().select(page.proxy.index(row, 0), flags)
    assert page.compare_button.isEnabled()
    page.compare_button.click()
    qtbot.waitUntil(lambda: "CATEGORY" in page.comparison.toPlainText(), timeout=60000)
    shown = page.comparison.toPlainText()
    with open_store(db) as store:
        expected = "\n".join(drift_lines(compare_tuned(store, 1, 2)))
    assert shown == expected
    assert "Tuned model of run 1 -> tuned model of run 2 (the same model file)" in shown
    win.close()
