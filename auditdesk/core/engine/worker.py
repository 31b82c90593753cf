"""Runs a llama.cpp model in a child process, so a native crash or OOM kills only that process.

The parent never imports llama_cpp: it sends requests over a pipe and receives
answers one by one. A dead worker becomes `WorkerCrashed` naming the model and the
signal; the worker ends itself when its parent goes away. Unloading = ending it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterator, Sequence

from auditdesk.core.engine.base import (
    DEFAULT_MAX_SEQUENCES,
    Answer,
    EngineError,
    EngineInfo,
    GenerationRequest,
    ModelSpec,
    SamplingParams,
    WorkerCrashed,
)
from auditdesk.core.progress import Cancelled, CancelToken

_POLL_S = 0.05


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown cause"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class LlamaWorkerEngine:
    """An Engine whose model lives in a spawned child process."""

    def __init__(self, spec: ModelSpec, *, max_sequences: int = DEFAULT_MAX_SEQUENCES) -> None:
        self.spec = spec
        self._name = spec.label or Path(spec.path).stem
        self._file = Path(spec.path).name
        # A fresh interpreter running this module, not multiprocessing's spawn:
        # spawn re-imports the caller's __main__, which in a script without a
        # main guard would start the whole program again inside the worker.
        parent_sock, child_sock = socket.socketpair()
        cancel_read, self._cancel_write = os.pipe()
        package_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "auditdesk.core.engine.worker",
                 str(child_sock.fileno()), str(cancel_read), str(os.getpid())],
                pass_fds=(child_sock.fileno(), cancel_read),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            child_sock.close()
            os.close(cancel_read)
        self._conn = Connection(parent_sock.detach())
        self._busy = False
        self._closed = False
        self._cancel_sent = False
        try:
            self._send((spec, max_sequences), "loading", loader=True)
        except WorkerCrashed:
            self.close()
            raise
        kind, payload = self._receive("loading", loader=True)
        if kind == "error":
            self.close()
            raise EngineError(payload)
        self._info: EngineInfo = payload

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def info(self) -> EngineInfo:
        return self._info

    # -- the pipe ------------------------------------------------------------

    def _alive(self) -> bool:
        return self._process.poll() is None

    def _set_cancel(self) -> None:
        if not self._cancel_sent:
            self._cancel_sent = True
            try:
                os.write(self._cancel_write, b"x")
            except OSError:
                pass

    def _crashed(self, activity: str, loader: bool = False) -> WorkerCrashed:
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        cause = _signal_name(self._process.returncode)
        who = "model loader" if loader else "model worker"
        self._closed = True
        return WorkerCrashed(
            f"the {who} for '{self._name}' ({self._file}) crashed ({cause}) while {activity}; "
            "everything already stored is kept, so the run can be resumed."
        )

    def _receive(self, activity: str, *, loader: bool = False, cancel: CancelToken | None = None):
        """Wait for the worker's next message, noticing a crash or a cancel meanwhile."""
        while True:
            try:
                if self._conn.poll(_POLL_S):
                    return self._conn.recv()
            except (EOFError, OSError):
                raise self._crashed(activity, loader) from None
            if not self._alive():
                # The last message may still be in the pipe after the exit.
                try:
                    if self._conn.poll(0):
                        return self._conn.recv()
                except (EOFError, OSError):
                    pass
                raise self._crashed(activity, loader)
            if cancel is not None and cancel.cancelled:
                self._set_cancel()

    def _send(self, message: tuple, activity: str, *, loader: bool = False) -> None:
        try:
            self._conn.send(message)
        except OSError:  # a broken pipe: the worker is gone
            raise self._crashed(activity, loader) from None

    def _check_free(self) -> None:
        """Refuse a request to an unloaded model or one that is still answering another."""
        if self._closed:
            raise EngineError(f"the model '{self._name}' was already unloaded.")
        if self._busy:
            raise EngineError("the model is still busy with an earlier request.")

    def _call(self, message: tuple, activity: str, cancel: CancelToken | None = None):
        """One request, one reply; `cancel` lets the worker stop it early."""
        self._check_free()
        self._busy = True
        try:
            self._send(message, activity)
            kind, payload = self._receive(activity, cancel=cancel)
        finally:
            self._busy = False
        if kind == "cancelled":
            raise Cancelled("cancelled by the user")
        if kind == "error":
            raise EngineError(payload)
        return payload

    # -- Engine --------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
    ) -> Iterator[Answer]:
        """Yield one Answer per request as the worker finishes it; raise Cancelled on cancel."""
        self._check_free()
        if cancel is not None:
            cancel.raise_if_cancelled()
        self._cancel_sent = False
        self._busy = True
        finished = False
        try:
            self._send(("generate", list(requests), params), "generating")
            while True:
                kind, payload = self._receive("generating", cancel=cancel)
                if kind == "answer":
                    yield payload
                    if cancel is not None and cancel.cancelled:
                        self._set_cancel()
                elif kind == "done":
                    finished = True
                    return
                elif kind == "cancelled":
                    finished = True
                    raise Cancelled("cancelled by the user")
                elif kind == "error":
                    finished = True
                    raise EngineError(payload)
        finally:
            if not finished and not self._closed and self._alive():
                # The caller stopped early: stop the batch and drain to its end marker.
                self._set_cancel()
                try:
                    while True:
                        kind, _ = self._receive("stopping")
                        if kind in {"done", "cancelled", "error"}:
                            break
                except WorkerCrashed:
                    pass
            self._busy = False

    def loglikelihood(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        return self._call(("loglikelihood", list(texts)), "scoring text")

    def next_token_logprobs(self, prefix: str, bodies: Sequence[str], endings: Sequence[str],
                            candidates: Sequence[str], *, batched: bool = True,
                            cancel: CancelToken | None = None) -> list[list[list[float | None]]]:
        """Next-token log-probabilities of the candidates, computed in the worker (see BatchedGenerator)."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        self._cancel_sent = False
        return self._call(("next_token_logprobs", prefix, list(bodies), list(endings), list(candidates), batched),
                          "grading answers", cancel=cancel)

    def render_prompts(self, questions: Sequence[str], format_id: str):
        """Render questions in `format_id` inside the worker (see prompts.render_prompts)."""
        return self._call(("render", list(questions), format_id), "rendering the chat template")

    def close(self) -> None:
        """End the worker; this is what unloading the model means."""
        if getattr(self, "_process", None) is None or getattr(self, "_released", False):
            return
        # File descriptors are closed exactly once: a second close could hit a
        # descriptor number the next engine has been given meanwhile.
        self._released = True
        if self._alive() and not self._closed:
            try:
                self._conn.send(("close",))
            except (OSError, EOFError, BrokenPipeError):
                pass
            try:
                self._process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        if self._alive():
            self._process.kill()
            self._process.wait(timeout=3)
        self._closed = True
        for close in (self._conn.close, lambda: os.close(self._cancel_write)):
            try:
                close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# -- inside the child process ------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """End this process when the parent is gone (pipe EOF cannot be seen mid-batch)."""
    # PR_SET_PDEATHSIG would fire when the parent *thread* that started us ends,
    # which in a GUI is any background thread, so the parent pid is polled instead.
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.2)


def _cancel_requested(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _drain_cancel(fd: int) -> None:
    while _cancel_requested(fd):
        if not os.read(fd, 4096):
            return


def _worker_main(conn: Connection, cancel_fd: int, parent_pid: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    # The parent handles Ctrl-C; a terminal's SIGINT must not kill the worker mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        spec, max_sequences = conn.recv()
    except (EOFError, OSError):
        return
    from auditdesk.core.engine.llama_batched import BatchedGenerator
    from auditdesk.core.errors import describe_error

    try:
        engine = BatchedGenerator(spec, max_sequences=max_sequences)
    except EngineError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:  # anything else in loading is still a load failure for the user
        conn.send(("error", f"the model '{spec.label or Path(spec.path).name}' could not be loaded: {describe_error(exc)}"))
        return
    info = engine.info()
    info.backend = "llama-worker"
    conn.send(("ready", info))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "close":
                return
            try:
                if kind == "generate":
                    _, requests, params = message
                    _drain_cancel(cancel_fd)
                    try:
                        for answer in engine.generate(requests, params, should_stop=lambda: _cancel_requested(cancel_fd)):
                            conn.send(("answer", answer))
                    except Cancelled:
                        conn.send(("cancelled", None))
                    else:
                        conn.send(("done", None))
                elif kind == "loglikelihood":
                    conn.send(("result", engine.loglikelihood(message[1])))
                elif kind == "next_token_logprobs":
                    _drain_cancel(cancel_fd)
                    try:
                        result = engine.next_token_logprobs(
                            *message[1:5], batched=message[5], should_stop=lambda: _cancel_requested(cancel_fd))
                    except Cancelled:
                        conn.send(("cancelled", None))
                    else:
                        conn.send(("result", result))
                elif kind == "render":
                    conn.send(("result", _render(engine, message[1], message[2])))
                else:
                    conn.send(("error", f"unknown request '{kind}' to the model worker."))
            except EngineError as exc:
                conn.send(("error", str(exc)))
            except (BrokenPipeError, EOFError):
                return
            except Exception as exc:
                conn.send(("error", describe_error(exc)))
    finally:
        engine.close()


def _render(engine, questions, format_id):
    return engine.render_prompts(questions, format_id)


if __name__ == "__main__":
    _worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
