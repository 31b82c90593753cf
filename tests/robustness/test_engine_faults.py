"""Model faults (rows 3, 5, 8, 9, 10, 11, 13) with the real llama.cpp worker on tiny models."""

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

from auditdesk.core.engine import EngineError, ModelSpec, WorkerCrashed, open_engine
from auditdesk.core.errors import AuditDeskError
from auditdesk.core.probes.items import ProbeItem

from .hostile import REPO, small_config, small_items


def _run(tmp_path, config, items, *, engine_factory=None):
    """Plan and execute a run with the product's default engine (a worker process per model)."""
    from auditdesk.core.audit_job import plan_run
    from auditdesk.core.audit_job import execute
    from auditdesk.core.store import open_store

    store = open_store(tmp_path / "audit.db")
    run_id = plan_run(config, store, items=items)
    try:
        execute(store, run_id, engine_factory=engine_factory)
    except BaseException:
        store.close()
        raise
    return store, run_id


# -- row 3: hostile chat templates --------------------------------------------------

ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"
HOSTILE_TEMPLATES = {
    "endless": ENDLESS,
    "class-walk": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "format-escape": "{{ '{0.__class__.__init__.__globals__}'.format(messages) }}",
    "attr-filter": "{{ messages|attr('__class__') }}{{ (messages|attr('append'))(1) }}",
    "mutate": "{% set _ = messages.append({'role': 'system', 'content': 'x'}) %}{{ messages }}",
}


@pytest.mark.parametrize("name", list(HOSTILE_TEMPLATES))
def test_hostile_chat_template_falls_back_to_plain_inside_the_worker(tmp_path, name):
    from auditdesk.core.engine.prompts import CHAT_FORMAT, PLAIN_FORMAT, RENDER_TIME_LIMIT_S
    from auditdesk.core.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / f"{name}.gguf", chat_template=HOSTILE_TEMPLATES[name])
    with open_engine(ModelSpec(path=str(model), n_ctx=256, n_threads=2, label="tuned")) as engine:
        started = time.monotonic()
        rendered = engine.render_prompts(["Which drill should I buy?"], CHAT_FORMAT)
        took = time.monotonic() - started
        assert rendered.format_id == PLAIN_FORMAT
        assert rendered.prompts == ["Question: Which drill should I buy?\nAnswer:"]
        assert "plain question-and-answer format was used instead" in rendered.notes[0]
        assert took < RENDER_TIME_LIMIT_S + 3
        if name == "endless":
            assert f"ran longer than {RENDER_TIME_LIMIT_S:g} s" in rendered.notes[0]
        # The worker survived the template and still answers.
        from auditdesk.core.engine import GenerationRequest, SamplingParams

        answers = list(engine.generate([GenerationRequest("k", rendered.prompts[0], 1)], SamplingParams(max_tokens=3)))
        assert answers[0].error is None


# -- row 5: the model loader crashes ------------------------------------------------


class _KillNextChild:
    """Sends `sig` to the next child process this test starts (a model worker) once llama.cpp is in it.

    Waiting for libllama in the child's memory map makes the crash land inside the
    model load, as a native abort or segfault in llama.cpp would.
    """

    def __init__(self, sig: int) -> None:
        self.sig = sig
        self.killed: list[int] = []
        self._before = self._children()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @staticmethod
    def _children() -> set[int]:
        pids = set()
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            try:
                pids |= {int(p) for p in (task / "children").read_text().split()}
            except OSError:
                pass
        return pids

    def _watch(self) -> None:
        while not self._stop.is_set() and not self.killed:
            for pid in self._children() - self._before:
                try:
                    maps = Path(f"/proc/{pid}/maps").read_text()
                except OSError:
                    continue
                if "libllama" in maps or "libggml" in maps:
                    os.kill(pid, self.sig)
                    self.killed.append(pid)
                    break
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGSEGV], ids=["SIGABRT", "SIGSEGV"])
def test_loader_crash_names_the_signal_and_the_model(tiny_model, sig):
    killer = _KillNextChild(sig)
    try:
        with pytest.raises(WorkerCrashed) as caught:
            open_engine(ModelSpec(path=str(tiny_model), n_ctx=256, n_threads=2, label="tuned"))
    finally:
        killer.stop()
    assert killer.killed
    message = str(caught.value)
    assert f"model loader for 'tuned' ({tiny_model.name}) crashed ({sig.name}) while loading" in message
    # The app (this process) goes on: the next load works.
    with open_engine(ModelSpec(path=str(tiny_model), n_ctx=256, n_threads=2)) as engine:
        assert engine.info().backend == "llama-worker"


def test_loader_crash_mid_run_keeps_the_data_and_the_run_resumes(tmp_path, tiny_model, tiny_lora):
    from auditdesk.core.audit_job import default_engine_factory, execute

    plain = default_engine_factory()

    def crash_the_tuned_load(spec):
        if spec.label != "tuned":
            return plain(spec)
        killer = _KillNextChild(signal.SIGABRT)
        try:
            return plain(spec)
        finally:
            killer.stop()

    with pytest.raises(AuditDeskError) as caught:
        _run(tmp_path, small_config(tiny_model, lora=tiny_lora), small_items(), engine_factory=crash_the_tuned_load)
    assert "crashed (SIGABRT) while loading" in str(caught.value) and "runs resume" in str(caught.value)
    from auditdesk.core.store import open_store

    with open_store(tmp_path / "audit.db") as store:
        run_id = store.list_runs()[0]["id"]
        kept = store.answers(run_id)
        assert {a["role"] for a in kept} == {"base"} and len(kept) == 6
        assert store.get_run(run_id)["status"] == "failed"
        execute(store, run_id)
        assert store.run_summary(run_id)["status"] == "completed"
        after = store.answers(run_id)
        assert len(after) == 12 and [a for a in after if a["role"] == "base"] == kept
        assert store.integrity_check() == "ok"


# -- row 8: a context too large for memory -------------------------------------------


def test_context_too_large_for_memory_is_a_clear_message_not_a_crash(tiny_model):
    # A 3 GB address-space limit stands in for a small machine; the worker inherits it.
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO)!r})
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
        from auditdesk.core.engine import EngineError, ModelSpec, open_engine
        try:
            open_engine(ModelSpec(path={str(tiny_model)!r}, n_ctx=2**23, n_threads=2, label="tuned"))
        except EngineError as exc:
            print("ERROR:", exc)
        with open_engine(ModelSpec(path={str(tiny_model)!r}, n_ctx=512, n_threads=2)) as engine:
            print("SMALLER CONTEXT WORKS:", engine.info().n_ctx)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR: could not prepare a context of 8388608 tokens for 'tuned'" in result.stdout
    assert "try a smaller context size" in result.stdout
    assert "SMALLER CONTEXT WORKS: 512" in result.stdout


def test_absurd_context_is_refused_before_llama_cpp_tries_to_allocate_it(tiny_model):
    import time

    from auditdesk.core.engine import EngineError, ModelSpec, open_engine
    from auditdesk.core.engine.hardware import available_memory_bytes

    if available_memory_bytes() is None:
        pytest.skip("no /proc/meminfo to compare the cache size with")
    started = time.monotonic()
    with pytest.raises(EngineError, match="needs about .* GiB of memory .* try a smaller context size"):
        open_engine(ModelSpec(path=str(tiny_model), n_ctx=2**30, n_threads=2, label="tuned"), backend="llama-inproc")
    assert time.monotonic() - started < 10  # llama.cpp itself took 80-90 s to give up on such a context


# -- row 9: GPU layers requested on a CPU-only build ---------------------------------


def test_gpu_layers_without_gpu_build_run_on_cpu_and_are_recorded(tmp_path, tiny_model, tiny_lora):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama.cpp build has GPU support; the fallback is for CPU-only builds")
    store, run_id = _run(tmp_path, small_config(tiny_model, lora=tiny_lora, gpu_layers=99), small_items(2))
    with store:
        run = store.get_run(run_id)
        assert run["status"] == "completed"
        for role in ("base", "tuned"):
            info = run["engine_info"][role]
            assert info["n_gpu_layers_requested"] == 99 and info["n_gpu_layers_used"] == 0
            assert any("ran on the CPU" in note for note in info["notes"])


# -- rows 10, 11, 13: answers that are empty, endless, or cannot be made -------------


def test_end_of_text_only_model_gives_empty_answers_and_a_report(tmp_path, tiny_model, eos_only_model):
    from auditdesk.core.audit_job import write_outputs

    store, run_id = _run(tmp_path, small_config(tiny_model, tuned=eos_only_model), small_items(3))
    with store:
        tuned = store.answers(run_id, "tuned")
        assert len(tuned) == 6
        assert all(a["answer"] == "" and a["finish_reason"] == "stop" and a["error"] is None for a in tuned)
        outputs = write_outputs(store, run_id, tmp_path / "out")
    assert outputs.pdf.stat().st_size > 0 and outputs.csv.exists()
    import json

    findings = json.loads(outputs.findings.read_text())
    assert findings["summary"]["answers"]["tuned"] == 6


def test_endless_model_is_cut_at_max_tokens_and_marked(tmp_path, tiny_model, endless_model):
    store, run_id = _run(tmp_path, small_config(tiny_model, tuned=endless_model, max_tokens=40), small_items(2))
    with store:
        tuned = store.answers(run_id, "tuned")
        assert tuned and all(a["finish_reason"] == "length" and a["completion_tokens"] == 40 for a in tuned)
        assert all(a["answer"].split() == ["the"] * 40 for a in tuned)


def test_endless_model_is_cut_at_the_time_limit_and_marked(tmp_path, tiny_model, endless_model):
    # 400 tokens take far longer than 2 ms even on an idle machine, so the time limit always cuts first.
    config = small_config(tiny_model, tuned=endless_model, max_tokens=400, time_limit_s=0.002)
    store, run_id = _run(tmp_path, config, small_items(2))
    with store:
        tuned = store.answers(run_id, "tuned")
        assert tuned and all(a["finish_reason"] == "time" for a in tuned)
        assert all(0 < a["completion_tokens"] < 400 for a in tuned)


def test_prompt_longer_than_the_context_fails_only_its_unit(tmp_path, tiny_model, tiny_lora):
    items = small_items(2) + [ProbeItem("robust", "1", "long", "gender", "open", "plain", "the price " * 400)]
    store, run_id = _run(tmp_path, small_config(tiny_model, lora=tiny_lora, n_ctx=256), items)
    with store:
        summary = store.run_summary(run_id)
        assert summary["status"] == "completed" and summary["units_failed"] == 4  # 2 samples x 2 models
        failed = [a for a in store.answers(run_id) if a["error"]]
        assert {a["probe_id"] for a in failed} == {"long"}
        assert all("the context holds 256" in a["error"] for a in failed)
        assert all(not a["error"] for a in store.answers(run_id) if a["probe_id"] != "long")
