"""The small protocol long work uses to report progress and to be cancelled.

Long work in core is a plain function that calls `reporter.progress(...)` and
checks `token.raise_if_cancelled()` between units (a probe, a batch, a batch of
embeddings). The CLI, the window and the tests each supply their own reporter;
nothing here knows about Qt or threads beyond `threading.Event`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


class Cancelled(Exception):
    """Raised inside long work when the user cancelled it; the work is resumable."""


@dataclass
class ProgressEvent:
    """One progress report: how far, how fast, and what is being worked on."""

    stage: str
    done: int
    total: int
    message: str = ""
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


class ProgressReporter(Protocol):
    def progress(self, event: ProgressEvent) -> None: ...


class NullReporter:
    """A reporter that ignores every event."""

    def progress(self, event: ProgressEvent) -> None:
        return None


class CollectingReporter:
    """A reporter that keeps every event (tests use it)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def progress(self, event: ProgressEvent) -> None:
        self.events.append(event)


class CancelToken:
    """Cooperative cancel and pause shared between a worker and its controller."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()  # a paused worker must wake up to see the cancel

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def raise_if_cancelled(self) -> None:
        """Block while paused; raise `Cancelled` once cancel() was called."""
        while not self._running.wait(0.1):
            pass
        if self._cancelled.is_set():
            raise Cancelled("cancelled by the user")


class EtaEstimator:
    """Remaining-time estimate from the average rate since the start."""

    def __init__(self, total: int, already_done: int = 0) -> None:
        self.total = total
        self._start_done = already_done
        self._start = time.monotonic()

    def eta(self, done: int) -> float | None:
        worked = done - self._start_done
        elapsed = time.monotonic() - self._start
        if worked <= 0 or elapsed <= 0:
            return None
        return (self.total - done) * elapsed / worked
