"""The model worker process: same answers as in-process, crashes contained, cancel, parent death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from auditdesk.core.engine import (
    EngineError,
    GenerationRequest,
    ModelSpec,
    SamplingParams,
    WorkerCrashed,
    open_engine,
)
from auditdesk.core.progress import Cancelled, CancelToken

PROMPT = "Question: which drill should I buy?\nAnswer:"
REPO = Path(__file__).resolve().parents[1]


def _long_work(n=3000):
    # Thousands of long answers: far more than the tests wait for.
    return [GenerationRequest(f"k{i}", f"Question: item {i % 50}?\nAnswer:", seed=i) for i in range(n)]


LONG = SamplingParams(max_tokens=60, stop=())


@pytest.fixture
def worker(tiny_model):
    eng = open_engine(ModelSpec(path=str(tiny_model), n_ctx=4096, n_threads=2, label="tuned"))
    yield eng
    eng.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_worker_answers_equal_in_process_answers(worker, tiny_model):
    requests = [GenerationRequest(f"k{i}", PROMPT, seed=i) for i in range(5)]
    params = SamplingParams(max_tokens=20, stop=())
    remote = {a.key: a.text for a in worker.generate(requests, params)}
    local_engine = open_engine(ModelSpec(path=str(tiny_model), n_ctx=4096, n_threads=2), backend="llama-inproc")
    try:
        local = {a.key: a.text for a in local_engine.generate(requests, params)}
    finally:
        local_engine.close()
    assert remote == local
    assert worker.info().backend == "llama-worker"
    assert worker.loglikelihood(["a hammer"])[0][0] < 0


def test_killed_worker_gives_a_clear_error_and_the_parent_survives(worker):
    answers = worker.generate(_long_work(), LONG)
    first = next(answers)
    assert first.text
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed) as caught:
        for _ in answers:
            pass
    message = str(caught.value)
    assert "SIGKILL" in message and "'tuned'" in message and "generating" in message
    with pytest.raises(EngineError):
        next(iter(worker.generate([GenerationRequest("x", PROMPT, seed=1)], LONG)))


def test_cancel_stops_the_batch_within_a_second(worker):
    token = CancelToken()
    answers = worker.generate(_long_work(), LONG, cancel=token)
    next(answers)
    cancelled_at = []

    def cancel_soon():
        time.sleep(0.3)
        cancelled_at.append(time.monotonic())
        token.cancel()

    threading.Thread(target=cancel_soon).start()
    with pytest.raises(Cancelled):
        for _ in answers:
            pass
    waited = time.monotonic() - cancelled_at[0]
    assert waited < 1.0, f"the batch took {waited:.2f} s to stop"
    # The worker is still usable after a cancel.
    again = list(worker.generate([GenerationRequest("x", PROMPT, seed=1)], SamplingParams(max_tokens=5, stop=())))
    assert again[0].completion_tokens == 5


def test_abandoned_iterator_leaves_the_worker_usable(worker):
    answers = worker.generate(_long_work(), LONG)
    next(answers)
    answers.close()
    again = list(worker.generate([GenerationRequest("x", PROMPT, seed=1)], SamplingParams(max_tokens=5, stop=())))
    assert len(again) == 1


def test_worker_exits_when_its_parent_dies(tiny_model, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from auditdesk.core.engine import open_engine, ModelSpec
        if __name__ == "__main__":
            eng = open_engine(ModelSpec(path={str(tiny_model)!r}, n_ctx=256, n_threads=1))
            print(eng.pid, flush=True)
            time.sleep(120)
        """
    )
    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(parent.stdout.readline())
        assert _alive(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_load_error_comes_back_as_engine_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(200))
    with pytest.raises(EngineError) as caught:
        open_engine(ModelSpec(path=str(bad), n_threads=1, label="tuned"))
    assert "broken.gguf" in str(caught.value)
    assert not isinstance(caught.value, WorkerCrashed) or "loading" in str(caught.value)


def test_close_ends_the_worker(tiny_model):
    eng = open_engine(ModelSpec(path=str(tiny_model), n_ctx=256, n_threads=1))
    pid = eng.pid
    eng.close()
    assert not _alive(pid)
