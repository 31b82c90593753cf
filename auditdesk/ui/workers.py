"""Runs long core work (model loads, hashing, audits, analysis, export) off the GUI thread.

A `Task` wraps one plain core function in a QThread and reports back through
queued signals only; it never touches a widget. `TaskManager` knows every live
task so the window can cancel and wait for them when it closes.
"""

from __future__ import annotations

import inspect
import threading
import time
import traceback
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from auditdesk.core.progress import CancelToken, Cancelled, ProgressEvent

# At most about ten progress signals a second reach the GUI thread; more only
# costs repaints and never tells the user anything new.
PROGRESS_INTERVAL_S = 0.1

_LIVE_THREADS: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def live_threads() -> list[QThread]:
    """QThreads started by tasks that are still running (tests check this is empty)."""
    return [thread for thread in list(_LIVE_THREADS) if thread.isRunning()]


class _ThrottledReporter:
    """A core ProgressReporter that forwards at most ~10 events a second to a signal."""

    def __init__(self, emit: Callable[[ProgressEvent], None], interval: float = PROGRESS_INTERVAL_S) -> None:
        self._emit = emit
        self._interval = interval
        self._last = 0.0
        self._pending: ProgressEvent | None = None
        self._lock = threading.Lock()

    def progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        with self._lock:
            final = event.total > 0 and event.done >= event.total
            if not final and now - self._last < self._interval:
                self._pending = event
                return
            self._last = now
            self._pending = None
        self._emit(event)

    def flush(self) -> None:
        with self._lock:
            event, self._pending = self._pending, None
        if event is not None:
            self._emit(event)


class _Worker(QObject):
    """Lives in the task's thread and calls the core function there."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object, str)
    was_cancelled = Signal()
    done = Signal()

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    @Slot()
    def run(self) -> None:
        reporter = _ThrottledReporter(self.progress.emit)
        kwargs = dict(self._kwargs)
        accepted = _accepted_keywords(self._fn)
        if "reporter" in accepted and "reporter" not in kwargs:
            kwargs["reporter"] = reporter
        try:
            result = self._fn(*self._args, **kwargs)
        except Cancelled:
            reporter.flush()
            self.was_cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user, never kill the app
            reporter.flush()
            self.failed.emit(exc, "".join(traceback.format_exception(exc)))
        else:
            reporter.flush()
            self.succeeded.emit(result)
        finally:
            self.done.emit()
            # Quit from inside the thread, so waiting for it never needs the GUI loop.
            QThread.currentThread().quit()


def _accepted_keywords(fn: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {"reporter", "cancel"}
    return set(params)


class Task(QObject):
    """One piece of background work with started / progress / result / error / finished signals.

    `fn` is called in a new QThread with `*args, **kwargs`; when it accepts a
    `reporter` keyword it gets a throttled progress reporter, and `cancel`
    (a CancelToken) is passed when given. The signals arrive in the GUI thread.
    """

    started = Signal()
    progress = Signal(object)  # ProgressEvent
    result = Signal(object)
    error = Signal(object, str)  # the exception, its traceback text
    cancelled = Signal()
    finished = Signal()

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any, cancel: CancelToken | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.name = name
        self.token = cancel
        if cancel is not None:
            kwargs["cancel"] = cancel
        self._thread = QThread()
        self._thread.setObjectName(f"auditdesk-{name}")
        self._worker = _Worker(fn, args, kwargs)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.succeeded.connect(self.result)
        self._worker.failed.connect(self.error)
        self._worker.was_cancelled.connect(self.cancelled)
        self._worker.done.connect(self._on_done)
        self._running = False

    def start(self) -> "Task":
        self._running = True
        _LIVE_THREADS.add(self._thread)
        self._thread.start()
        self.started.emit()
        return self

    @property
    def running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        """Ask the work to stop at its next checkpoint (only works that take a CancelToken can)."""
        if self.token is not None:
            self.token.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has ended (used on quit, after cancel); True when it did."""
        return self._thread.wait(timeout_ms)

    @Slot()
    def _on_done(self) -> None:
        self._thread.wait()
        self._running = False
        self.finished.emit()


class TaskManager(QObject):
    """Keeps every running task alive and can stop them all (on quit)."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: list[Task] = []

    def start(self, task: Task) -> Task:
        self._tasks.append(task)
        task.finished.connect(lambda t=task: self._forget(t))
        task.start()
        self.busy_changed.emit(True)
        return task

    def _forget(self, task: Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        task.deleteLater()
        if not self._tasks:
            self.busy_changed.emit(False)

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def running(self, name: str | None = None) -> list[Task]:
        return [t for t in self._tasks if t.running and (name is None or t.name == name)]

    def stop_all(self, timeout_ms: int = 60_000) -> bool:
        """Cancel every task and wait for its thread; True when all have ended.

        Work without a cancel token (hashing one file, loading a model) cannot be
        interrupted, so this waits for it to finish.
        """
        for task in list(self._tasks):
            task.cancel()
        deadline = time.monotonic() + timeout_ms / 1000
        ok = True
        for task in list(self._tasks):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            ok = task.wait(left) and ok
        # Deliver the queued finished signals so every task is forgotten properly.
        from PySide6.QtCore import QCoreApplication

        QCoreApplication.processEvents()
        return ok
