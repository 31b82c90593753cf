"""Opens the real AuditDesk window on the demo models and saves a screenshot of each page.

Run under a virtual display: `xvfb-run -a python packaging/screenshots.py [--out docs/screenshots]`.
It runs the demo audit (quick pack, 5 samples, 48-token answers) in a temporary
AuditDesk home, so it never touches the user's own database.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 200_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--pack", default="quick")
    parser.add_argument("--keep-home", action="store_true", help="reuse AUDITDESK_HOME if set (assembled model cached)")
    parser.add_argument("--servers-only", action="store_true", help="only the models-on-servers screenshot (1b)")
    args = parser.parse_args(argv)
    if not args.keep_home or "AUDITDESK_HOME" not in os.environ:
        os.environ["AUDITDESK_HOME"] = tempfile.mkdtemp(prefix="auditdesk-shots-")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings, QSize, Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.path.join(os.environ["AUDITDESK_HOME"], "settings"))
    from auditdesk.ui.app import MainWindow, create_app

    app = create_app([sys.argv[0]])
    QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.No)  # type: ignore[method-assign]
    window = MainWindow(Path(os.environ["AUDITDESK_HOME"]) / "auditdesk.db")
    window.resize(QSize(1180, 800))
    window.show()

    def wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):  # let layouts and repaints settle
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        image = window.grab().toImage()
        image.save(str(path), "PNG", 9)
        if path.stat().st_size > MAX_BYTES:
            # Fewer colours keep a UI screenshot sharp and small.
            from PySide6.QtGui import QImage

            image.convertToFormat(QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.ThresholdDither).save(str(path), "PNG", 9)
        print(f"saved {path} ({path.stat().st_size // 1024} KB)")

    from auditdesk.ui.widgets.common import SHOWN_ERRORS

    if args.servers_only:
        servers_shot(window, wait, shot)
        window.close()
        return 0
    models = window.pages["models"]
    models.on_shown()
    models.use_demo_models()
    wait(lambda: window.session.models_ready or SHOWN_ERRORS, 600, "the demo models")
    if SHOWN_ERRORS:
        raise SystemExit(f"screenshots: {SHOWN_ERRORS[-1]}")
    wait(lambda: bool(models.gpu_note.text()), 60, "the GPU check")
    shot("1-models")

    window.go("probes")
    probes = window.pages["probes"]
    wait(lambda: bool(probes.packs), 60, "the probe packs")
    probes.set_checked([args.pack])
    probes.samples_spin.setValue(args.samples)
    probes.tokens_spin.setValue(args.max_tokens)
    for row in range(probes.tree.topLevelItemCount()):
        if probes.tree.topLevelItem(row).data(0, Qt.ItemDataRole.UserRole) == args.pack:
            probes.tree.setCurrentItem(probes.tree.topLevelItem(row))
    shot("2-probes")

    window.go("run")
    run = window.pages["run"]
    run.confirm_long_run = lambda duration: True  # on a busy machine the estimate can pass an hour; go ahead
    run.start_run()

    def both_answered() -> bool:
        tuned = run.tuned_answer.toPlainText()
        return bool(tuned) and not tuned.startswith("(") or window.session.run_status == "completed"

    wait(lambda: both_answered() or SHOWN_ERRORS, 1800, "answers from both models")
    if SHOWN_ERRORS:
        raise SystemExit(f"screenshots: {SHOWN_ERRORS[-1]}")
    shot("3-run")
    wait(lambda: window.session.run_status == "completed" or SHOWN_ERRORS, 1800, "the audit to finish")
    if SHOWN_ERRORS:
        raise SystemExit(f"screenshots: {SHOWN_ERRORS[-1]}")

    window.go("results")
    results = window.pages["results"]
    wait(lambda: results.model.rowCount() > 0, 120, "the results")
    shot("4-results")
    results.tabs.setCurrentIndex(1)
    if results.map._points:  # noqa: SLF001 - pick a tuned answer so the map shows a selection
        tuned = [i for i, p in enumerate(results.map._points) if p.get("role") == "tuned"]  # noqa: SLF001
        results.map.select(tuned[0] if tuned else 0)
    shot("4b-cluster-map")
    results.tabs.setCurrentIndex(0)

    window.go("report")
    report = window.pages["report"]
    report.org_edit.setText("Example Insurance Ltd")
    report.auditor_edit.setText("J. Example, Model Risk")
    report.folder_edit.setText(str(Path(os.environ["AUDITDESK_HOME"]) / "reports"))
    report.export()
    wait(lambda: bool(report.written) or SHOWN_ERRORS, 600, "the report export")
    shot("5-report")

    window.go("history")
    history = window.pages["history"]
    wait(lambda: history.model.rowCount() > 0, 60, "the history")
    shot("6-history")

    window.go("ask")
    ask = window.pages["ask"]
    ask.question_edit.setPlainText("Who should fix the leaking tap at home, and why?")
    ask.samples_spin.setValue(2)
    ask.tokens_spin.setValue(48)
    ask.ask()
    wait(lambda: ask.ask_button.isEnabled() and len(ask.answers["tuned"]) == 2 or SHOWN_ERRORS, 600, "Ask both")
    shot("7-ask-both")
    servers_shot(window, wait, shot)
    window.close()
    return 0


def servers_shot(window, wait, shot) -> None:  # noqa: ANN001
    """Step 1 with models on servers: two real llama_cpp.server processes serving a tiny model written here."""
    import importlib.util
    import socket
    import subprocess
    import urllib.request

    if importlib.util.find_spec("fastapi") is None:
        print("skipped 1b-models-on-servers: llama_cpp.server needs its [server] extras")
        return
    from auditdesk.core.models.tiny import write_tiny_model

    model = write_tiny_model(Path(os.environ["AUDITDESK_HOME"]) / "tiny.gguf")
    procs, urls = [], []
    try:
        for _ in range(2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            procs.append(subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
                                           "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--n_threads", "1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")

        def up(url: str) -> bool:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=1):
                    return True
            except OSError:
                return False

        wait(lambda: all(up(u) for u in urls), 120, "the model servers")
        window.go("models")
        models = window.pages["models"]
        models.server_check.setChecked(True)
        for (address, _name), url in zip(models.server_edits.values(), urls):
            address.setText(url)
        models.check_servers()
        wait(lambda: bool(window.session.models.base_server), 120, "the servers check")
        shot("1b-models-on-servers")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
