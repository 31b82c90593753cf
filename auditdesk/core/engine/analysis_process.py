"""The analysis in a child process, beside the model worker: a crash or a long import never stops the caller.

Importing torch and sentence-transformers holds Python's GIL for hundreds of
milliseconds, which would freeze a window; so the window analyses here. The child
speaks one JSON object per line on stdout (progress, result or error); library
chatter goes to stderr so it can never corrupt that stream.
"""

from __future__ import annotations

import json
import sys
import time

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, Cancelled, ProgressEvent, ProgressReporter


def analyse_in_child_process(store, run_id: int, *, reporter: ProgressReporter | None = None,  # noqa: ANN001
                             cancel: CancelToken | None = None, judge: str | None = None) -> dict:
    """Analyse a run of `store` in a child process, store the findings there, and return them.

    Has the signature of `audit_job.analyse_run`, so `run_job(analyser=...)` takes either
    (bind `judge`, a judge model file, with functools.partial: the run's answers are then
    graded by it and analysed again with its grades).
    """
    import select
    import subprocess

    if reporter is not None:
        reporter.progress(ProgressEvent("analysis", 0, 0, "Analysing the answers (embeddings, statistics, clusters)…"))
    process = subprocess.Popen([sys.executable, "-m", __name__, str(store.path), str(int(run_id)),
                                *([judge] if judge else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    findings = failure = None
    try:
        assert process.stdout is not None
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user")
            ready, _, _ = select.select([process.stdout], [], [], 0.1)
            if not ready:
                continue
            line = process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            if message["kind"] == "progress" and reporter is not None:
                reporter.progress(ProgressEvent(**message["event"]))
            elif message["kind"] == "result":
                findings = message["findings"]
            elif message["kind"] == "error":
                failure = message["message"]
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    if failure is not None:
        raise AuditDeskError(failure)
    if findings is None:
        raise AuditDeskError(f"The analysis of run {run_id} stopped unexpectedly (exit code {process.returncode}); "
                             "the answers are kept, open the run from History to try again.")
    return findings


class _LineReporter:
    """Progress as JSON lines, at most about ten a second."""

    def __init__(self, out) -> None:  # noqa: ANN001
        self._out = out
        self._last = 0.0

    def progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and not (event.total and event.done >= event.total):
            return
        self._last = now
        _send(self._out, {"kind": "progress", "event": {
            "stage": event.stage, "done": event.done, "total": event.total, "message": event.message,
            "tokens_per_second": event.tokens_per_second, "eta_seconds": event.eta_seconds}})


def _send(out, message: dict) -> None:  # noqa: ANN001
    out.write(json.dumps(message, ensure_ascii=True) + "\n")
    out.flush()


def main(db_path: str, run_id: int, judge: str | None = None) -> None:
    """Entry point of the analysis process: analyse (with the judge model file, if given), store,
    print the findings as one JSON line. A cancelled judge keeps its grades; the next run reuses them."""
    import auditdesk.core  # noqa: F401 - offline switches before anything loads
    from auditdesk.core.audit_job import analyse_run
    from auditdesk.core.errors import describe_error
    from auditdesk.core.store.db import open_store

    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the message stream
    try:
        with open_store(db_path) as store:
            findings = analyse_run(store, run_id, reporter=_LineReporter(out))
            if judge:
                from auditdesk.core.judge import JudgeChoice, judge_and_analyse

                findings = judge_and_analyse(store, run_id, JudgeChoice(path=judge), reporter=_LineReporter(out))
        _send(out, {"kind": "result", "findings": findings})
    except BaseException as exc:  # noqa: BLE001 - the parent turns this into a message
        _send(out, {"kind": "error", "message": describe_error(exc)})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
