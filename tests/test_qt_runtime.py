"""The installed Qt binding survives what the window does thousands of times per audit."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

# Run in a child: a binding with a reference-counting bug aborts the interpreter.
EMIT_MANY = """
import sys
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal
app = QCoreApplication([])

class Worker(QObject):
    progress = Signal(object)
    done = Signal()

    def run(self):
        for i in range(5000):
            self.progress.emit({"done": i})
        self.done.emit()

received = []
worker, thread = Worker(), QThread()
worker.moveToThread(thread)
thread.started.connect(worker.run)
worker.progress.connect(received.append)
worker.done.connect(thread.quit)
thread.finished.connect(app.quit)
before = sys.getrefcount(True), sys.getrefcount(None)
thread.start()
app.exec()
thread.wait()
after = sys.getrefcount(True), sys.getrefcount(None)
print(len(received), before[0] - after[0] < 100, before[1] - after[1] < 100)
"""


def test_thousands_of_progress_signals_from_a_worker_thread_do_not_crash():
    result = subprocess.run([sys.executable, "-c", EMIT_MANY], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, f"the Qt binding crashed: {result.stderr[-500:]}"
    assert result.stdout.split() == ["5000", "True", "True"]


def test_missing_xcb_libraries_are_named_with_the_install_command(monkeypatch, capsys):
    from auditdesk.ui import app, system_check

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(system_check.sys, "platform", "linux")
    missing = system_check.missing_xcb_packages(lambda name: None if name in ("xcb-cursor", "xkbcommon-x11") else name)
    assert missing == ["libxcb-cursor0", "libxkbcommon-x11-0"]
    monkeypatch.setattr(system_check.ctypes.util, "find_library", lambda name: None if name == "xcb-icccm" else name)
    monkeypatch.setattr(system_check, "missing_xcb_packages",
                        lambda: ["libxcb-icccm4"])
    assert app.main([]) == 1  # exits cleanly, before any Qt object exists
    err = capsys.readouterr().err
    assert "libxcb-icccm4" in err and "sudo apt install libxcb-icccm4" in err


def test_offscreen_needs_no_xcb_libraries(monkeypatch):
    from auditdesk.ui import system_check

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert system_check.missing_xcb_packages(lambda name: None) == []
