"""The command line's progress bar, shared by audit, report and the judge (a module of its own, so they
import it without importing each other)."""

from __future__ import annotations

import time


class ProgressBar:
    """A rich progress bar fed by runner events (at most about 10 redraws a second)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> "ProgressBar":
        if self.quiet:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None, speed="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def progress(self, event) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and event.done < event.total:
            return
        self._last = now
        speed = f"{event.tokens_per_second:.0f} tok/s" if event.tokens_per_second else ""
        self._progress.update(self._task, completed=event.done, total=event.total,
                              description=event.message[:48], speed=speed)
