"""The `auditdesk-gui` entry point: the application object, error hook and main window.

The window is a client of `auditdesk.core` like the CLI; it holds no audit logic,
runs every long call through `workers.Task`, and must never block its event loop.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from auditdesk import __version__
from auditdesk.ui.context import PageContext
from auditdesk.ui.settings import APPLICATION, ORGANISATION, settings
from auditdesk.ui.state import AuditSession
from auditdesk.ui.widgets.common import show_error
from auditdesk.ui.workers import TaskManager


# (page key, label with mnemonic, needs)
STEPS = [
    ("models", "&1  Models"),
    ("probes", "&2  Probes"),
    ("run", "&3  Run"),
    ("results", "&4  Results"),
    ("report", "&5  Report"),
    ("history", "&6  History"),
    ("ask", "&7  Ask both"),
    ("monitoring", "&8  Monitoring"),
]


def app_icon() -> QIcon:
    from auditdesk.core.paths import resource_path

    try:
        path = resource_path("icons", "auditdesk.svg")
    except FileNotFoundError:
        return QIcon()
    return QIcon(str(path)) if path.is_file() else QIcon()


class MainWindow(QMainWindow):
    """Steps on the left (Models → Probes → Run → Results → Report, History, Ask both), pages on the right."""

    page_changed = Signal(str)

    def __init__(self, db_path: Path | None = None) -> None:
        super().__init__()
        from auditdesk.core.paths import default_db_path

        self.setWindowTitle("AuditDesk")
        self.setWindowIcon(app_icon())
        self.tasks = TaskManager(self)
        self.session = AuditSession(Path(db_path) if db_path else default_db_path(), self)
        self.settings = settings()
        self._closing = False

        from auditdesk.ui.pages.ask import AskPage
        from auditdesk.ui.pages.history import HistoryPage
        from auditdesk.ui.pages.models import ModelsPage
        from auditdesk.ui.pages.monitoring import MonitoringPage
        from auditdesk.ui.pages.probes import ProbesPage
        from auditdesk.ui.pages.report import ReportPage
        from auditdesk.ui.pages.results import ResultsPage
        from auditdesk.ui.pages.run import RunPage

        context = PageContext(session=self.session, tasks=self.tasks, settings=self.settings, go=self.go,
                              show_status=self.statusBar().showMessage, resume_run=self.resume_run,
                              verify_report=self.verify_report)
        pages = {"models": ModelsPage, "probes": ProbesPage, "run": RunPage, "results": ResultsPage,
                 "report": ReportPage, "history": HistoryPage, "ask": AskPage,
                 "monitoring": MonitoringPage}
        self.pages = {key: page(context) for key, page in pages.items()}
        self.nav = QListWidget()
        self.nav.setAccessibleName("Audit steps")
        self.nav.setObjectName("steps")
        self.stack = QStackedWidget()
        for key, label in STEPS:
            item = QListWidgetItem(label.replace("&", ""))
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setSizeHint(QSize(150, 36))
            self.nav.addItem(item)
            self.stack.addWidget(self.pages[key])
        self.nav.setFixedWidth(max(160, self.nav.sizeHintForColumn(0) + 32))
        self.nav.currentRowChanged.connect(self._on_nav)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._build_menus()
        self.statusBar().showMessage("Choose the two models to compare.")
        for signal in (self.session.models_changed, self.session.probes_changed, self.session.run_changed, self.session.findings_changed):
            signal.connect(self.update_steps)
        self.update_steps()
        self.nav.setCurrentRow(0)
        self._restore_geometry()

    # -- navigation -------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open models…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(lambda: (self.go("models"), self.pages["models"].choose_base()))
        file_menu.addAction(self.open_action)
        self.import_action = QAction("&Import probe pack…", self)
        self.import_action.triggered.connect(lambda: (self.go("probes"), self.pages["probes"].import_pack()))
        file_menu.addAction(self.import_action)
        self.verify_action = QAction("&Verify a report…", self)
        self.verify_action.triggered.connect(lambda: self.verify_report())
        file_menu.addAction(self.verify_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        audit_menu = self.menuBar().addMenu("&Audit")
        self.demo_action = QAction("Use the &demo models", self)
        self.demo_action.triggered.connect(lambda: (self.go("models"), self.pages["models"].use_demo_models()))
        audit_menu.addAction(self.demo_action)
        self.run_action = QAction("&Run audit", self)
        self.run_action.setShortcut(QKeySequence("Ctrl+R"))
        self.run_action.triggered.connect(self._run_shortcut)
        audit_menu.addAction(self.run_action)
        self.cancel_action = QAction("&Cancel running work", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_action.triggered.connect(self.cancel_current)
        audit_menu.addAction(self.cancel_action)

        go_menu = self.menuBar().addMenu("&Go")
        for index, (key, label) in enumerate(STEPS, 1):
            action = QAction(label.split("  ", 1)[1], self)
            action.setShortcut(QKeySequence(f"Ctrl+{index}"))
            action.triggered.connect(lambda _=False, k=key: self.go(k))
            go_menu.addAction(action)
            self.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About AuditDesk", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def verify_report(self, pdf: str = "") -> None:
        """File → Verify a report: the same checks as `auditdesk verify`, in a dialog."""
        from auditdesk.ui.widgets.evidence import VerifyDialog

        self.verify_dialog = VerifyDialog(self, self.tasks, pdf)
        self.verify_dialog.open()

    def _run_shortcut(self) -> None:
        if self.session.probes_ready:
            self.go("run")
            self.pages["run"].start_run()

    def cancel_current(self) -> None:
        page = self.stack.currentWidget()
        if hasattr(page, "cancel"):
            page.cancel()

    def go(self, key: str) -> bool:
        """Show a page if its step is open; False when it is still locked."""
        row = [k for k, _ in STEPS].index(key)
        item = self.nav.item(row)
        if not item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.statusBar().showMessage(self._locked_reason(key), 5000)
            return False
        self.nav.setCurrentRow(row)
        return True

    def current_page(self) -> str:
        return STEPS[self.nav.currentRow()][0]

    def _on_nav(self, row: int) -> None:
        if row < 0:
            return
        key = STEPS[row][0]
        self.stack.setCurrentIndex(row)
        page = self.pages[key]
        if hasattr(page, "on_shown"):
            page.on_shown()
        self.page_changed.emit(key)

    def step_open(self, key: str) -> bool:
        s = self.session
        return {
            "models": True,
            "probes": s.models_ready,
            "run": s.probes_ready or s.run_id is not None,
            "results": s.run_ready,
            "report": s.run_ready,
            "history": True,
            "ask": s.models.chosen,
            "monitoring": True,
        }[key]

    def _locked_reason(self, key: str) -> str:
        return {
            "probes": "Choose and inspect both models first (step 1).",
            "run": "Choose at least one probe pack first (step 2).",
            "results": "Run the audit to the end first (step 3).",
            "report": "Run the audit to the end first (step 3).",
            "ask": "Choose both models first (step 1).",
        }.get(key, "")

    def update_steps(self) -> None:
        for row, (key, _) in enumerate(STEPS):
            item = self.nav.item(row)
            flags = item.flags()
            if self.step_open(key):
                item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip("")
            else:
                item.setFlags(flags & ~Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip(self._locked_reason(key))

    # -- about, geometry, closing ------------------------------------------------
    def show_about(self) -> None:
        from PySide6 import __version__ as pyside_version
        from PySide6.QtCore import qVersion

        from importlib.metadata import PackageNotFoundError, version

        # The package metadata, not `import llama_cpp`: loading the library would freeze the window.
        try:
            llama = f"llama-cpp-python {version('llama-cpp-python')}"
        except PackageNotFoundError:
            llama = "llama-cpp-python not installed"
        QMessageBox.about(
            self,
            "About AuditDesk",
            f"AuditDesk {__version__}\n\n"
            "Checks, offline, whether a vendor's fine-tuned language model behaves "
            "differently from the base model it was made from.\n\n"
            f"{llama}\nQt {qVersion()} (PySide6 {pyside_version})\nPython {sys.version.split()[0]}",
        )

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 780)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.tasks.running("audit") and not self._closing:
            answer = QMessageBox.question(
                self,
                "Stop the audit?",
                "An audit is running. Stop it and close AuditDesk?\n\n"
                "Everything answered so far is kept, and you can resume the audit next time.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._closing = True
        self.statusBar().showMessage("Stopping background work…")
        self.tasks.stop_all()
        self.settings.setValue("window/geometry", self.saveGeometry())
        for page in self.pages.values():
            if hasattr(page, "save_settings"):
                page.save_settings()
        event.accept()

    # -- startup ------------------------------------------------------------------
    def offer_resume(self) -> None:
        """Offer to resume the newest run that was interrupted (crash, quit, cancel)."""
        from auditdesk.ui import backend

        try:
            run = backend.interrupted_run(self.session.db_path)
        except Exception:  # noqa: BLE001 - a damaged database is reported when used, not at startup
            return
        if run is None:
            return
        done, planned = run.get("units_done", 0), run.get("units_planned", 0)
        answer = QMessageBox.question(
            self,
            "Resume the interrupted audit?",
            f"Audit {run['id']} (started {str(run.get('created') or '')[:16].replace('T', ' ')}) stopped after "
            f"{done} of {planned} answers.\n\nResume it now? You can also resume it later from History.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.resume_run(int(run["id"]))

    def notify_monitor_concerns(self) -> None:
        """Say in the status bar when a monitor's last run (often a scheduled one) found a new concern."""
        from auditdesk.ui import backend

        try:
            found = backend.new_monitor_concerns(self.session.db_path)
        except Exception:  # noqa: BLE001 - a damaged database is reported when used, not at startup
            return
        if not found:
            return
        parts = [f"{o['monitor']} (run {o['run_id']}): " + ", ".join(
            [f"{role} model swapped on its server" for role in o.get("swapped") or []] + o["new_concerns"])
            for o in found]
        self.monitor_notice = "New concern found by a monitor — " + "; ".join(parts) + ". See Monitoring (Ctrl+8)."
        self.statusBar().showMessage(self.monitor_notice)

    def resume_run(self, run_id: int) -> None:
        self.session.set_run(run_id, "cancelled")
        self.update_steps()
        self.go("run")
        self.pages["run"].resume_run(run_id)


def install_excepthook(window_getter) -> None:  # noqa: ANN001
    """Unexpected errors become a dialog; the application keeps running."""

    def hook(exc_type, exc, tb) -> None:  # noqa: ANN001
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(details)
        try:
            show_error(window_getter(), "Unexpected error", exc, details)
        except Exception:  # noqa: BLE001 - never recurse from the hook itself
            pass

    sys.excepthook = hook


def create_app(argv: list[str] | None = None) -> QApplication:
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    return app  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    """Open the AuditDesk window (the `auditdesk-gui` command)."""
    import argparse

    parser = argparse.ArgumentParser(prog="auditdesk-gui", description="Open the AuditDesk window.")
    parser.add_argument("--db", help="the audit database to use (default: in the AuditDesk home)")
    parser.add_argument("--demo", action="store_true", help="fill in the demo models on start")
    args, qt_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    import auditdesk.core  # noqa: F401 - sets the offline switches before anything loads
    from auditdesk.ui.system_check import missing_xcb_packages, xcb_message

    missing = missing_xcb_packages()
    if missing:
        print(xcb_message(missing), file=sys.stderr)
        return 1

    app = create_app([sys.argv[0], *qt_args])
    window = MainWindow(Path(args.db) if args.db else None)
    install_excepthook(lambda: window)
    window.show()
    QTimer.singleShot(0, window.offer_resume)
    QTimer.singleShot(0, window.notify_monitor_concerns)
    if args.demo:
        QTimer.singleShot(0, window.pages["models"].use_demo_models)
    code = app.exec()
    release_window(app, window)
    return code


def release_window(app, window) -> None:
    """Destroy the window while Qt is still whole, not in interpreter shutdown.

    Left to the garbage collector at exit, PySide6 objects can be torn down in an
    order that aborts the process after an audit ("none_dealloc").
    """
    window.close()
    window.deleteLater()
    app.processEvents()
    app.sendPostedEvents(None, 0)


if __name__ == "__main__":
    os.environ.setdefault("AUDITDESK_GUI", "1")
    sys.exit(main())
