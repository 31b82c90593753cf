"""Executes a stored plan batch by batch through an engine, one model in memory at a time.

Every finished answer is written in its own transaction and a unit already
stored is never written twice, so a run stopped at any moment resumes to the
same result. It must never reshape a batch: a batch that has to be redone runs
again whole, exactly as planned, and the duplicates are discarded.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable

from auditdesk.core.engine.base import Engine, GenerationRequest, ModelSpec, SamplingParams
from auditdesk.core.progress import CancelToken, Cancelled, EtaEstimator, NullReporter, ProgressEvent, ProgressReporter
from auditdesk.core.store.db import DiskFull, Store, utc_now

EngineFactory = Callable[[ModelSpec], Engine]


class RunCancelled(Cancelled):
    """The run stopped because the user cancelled it; it can be resumed."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"audit run {run_id} was cancelled; continue it with `auditdesk runs resume {run_id}`.")
        self.run_id = run_id


@dataclass
class RunStats:
    """What one execution of a run did, and where its time went."""

    run_id: int
    units_total: int = 0
    units_stored: int = 0  # stored by this execution
    units_failed: int = 0
    units_reused: int = 0  # copied from another run's answers under the same reuse key
    duplicates_discarded: int = 0
    duplicates_differing: int = 0  # a redone unit whose new answer differs from the stored one
    completion_tokens: int = 0
    generate_seconds: float = 0.0  # waiting for the engine
    store_seconds: float = 0.0  # writing answers
    load_seconds: float = 0.0
    engine_info: dict = field(default_factory=dict)

    @property
    def store_overhead(self) -> float:
        """Storing time as a fraction of generation time."""
        return self.store_seconds / self.generate_seconds if self.generate_seconds else 0.0


def execute_run(
    store: Store,
    run_id: int,
    *,
    specs: dict[str, ModelSpec],
    params: SamplingParams,
    engine_factory: EngineFactory,
    reporter: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    reuse: bool = True,
) -> RunStats:
    """Run every unit of `run_id` not yet stored; mark the run completed, cancelled or failed.

    With `reuse`, a batch whose every pending unit has an answer stored under the
    same reuse key (in any run of the database) is copied instead of generated; a
    batch only partly found is generated whole, as planned.
    """
    reporter = reporter or NullReporter()
    cancel = cancel or CancelToken()
    units = store.units(run_id)
    stats = RunStats(run_id=run_id, units_total=len(units))
    done = sum(1 for u in units if u["status"] != "pending")
    run = store.get_run(run_id)
    store.update_run(
        run_id, status="running", started=run["started"] or utc_now(), ended=None,
        runner_pid=os.getpid(), runner_host=socket.gethostname(),
        attempts=run["attempts"] + 1, last_error=None,
    )
    engine_info = dict(run.get("engine_info") or {})
    eta = EtaEstimator(len(units), already_done=done)
    started = time.monotonic()

    def checkpoint() -> None:
        if cancel.paused and not cancel.cancelled:
            store.set_status(run_id, "paused")
            cancel.raise_if_cancelled()  # blocks until resumed or cancelled
            store.set_status(run_id, "running")
        cancel.raise_if_cancelled()

    def report(stage: str, unit: dict) -> None:
        elapsed = time.monotonic() - started
        reporter.progress(ProgressEvent(
            stage=stage, done=done, total=len(units),
            message=f"latest answer: {unit['role']} model, {unit['pack_id']}/{unit['probe_id']}",
            tokens_per_second=(stats.completion_tokens / elapsed) if elapsed > 0 else None,
            eta_seconds=eta.eta(done),
            extra={"run_id": run_id, "role": unit["role"], "probe_id": unit["probe_id"],
                   "failed": stats.units_failed},
        ))

    try:
        for role in [r for r in ("base", "tuned") if r in specs]:
            batches = [list(b) for _, b in groupby((u for u in units if u["role"] == role),
                                                   key=lambda u: u["batch_no"])]
            todo = [b for b in batches if any(u["status"] == "pending" for u in b)]
            if reuse and todo:
                before = stats.units_reused
                todo = [b for b in todo if not _copy_reused_batch(store, run_id, b, stats)]
                if stats.units_reused > before:
                    done = sum(1 for u in units if u["status"] != "pending")
                    report("reuse", batches[-1][-1])
            if not todo:
                continue
            checkpoint()
            t0 = time.monotonic()
            engine = engine_factory(specs[role])
            stats.load_seconds += time.monotonic() - t0
            try:
                info = engine.info()
                engine_info[role] = {**info.__dict__, "notes": list(info.notes)}
                store.update_run(run_id, engine_info=engine_info)
                for batch in todo:
                    checkpoint()
                    if batch[0]["unit_type"] == "likelihood":
                        done += _run_likelihood_batch(store, run_id, engine, batch, stats)
                        report("likelihood", batch[-1])
                        continue
                    by_key = {u["unit_key"]: u for u in batch}
                    stored_text = {u["unit_key"]: None for u in batch if u["status"] != "pending"}
                    if stored_text:
                        for row in store.query(
                            "SELECT unit_key, answer FROM answers WHERE run_id = ? AND unit_id IN "
                            f"({', '.join('?' for _ in stored_text)})",
                            (run_id, *(by_key[k]["id"] for k in stored_text)),
                        ):
                            stored_text[row["unit_key"]] = row["answer"]
                    requests = [GenerationRequest(u["unit_key"], u["prompt"], u["seed"]) for u in batch]
                    answered: set[str] = set()
                    t_gen = time.monotonic()
                    for answer in engine.generate(requests, params, cancel=cancel):
                        t_got = time.monotonic()
                        stats.generate_seconds += t_got - t_gen
                        answered.add(answer.key)
                        unit = by_key[answer.key]
                        if answer.key in stored_text:
                            stats.duplicates_discarded += 1
                            if stored_text[answer.key] != (answer.text or ""):
                                stats.duplicates_differing += 1
                        elif store.record_answer(run_id, unit, answer):
                            done += 1
                            stats.units_stored += 1
                            stats.completion_tokens += answer.completion_tokens
                            if answer.error:
                                stats.units_failed += 1
                            report("generate", unit)
                        t_gen = time.monotonic()
                        stats.store_seconds += t_gen - t_got
                        checkpoint()
                    checkpoint()
                    missing = [k for k in by_key if k not in answered and k not in stored_text]
                    if missing:
                        raise RuntimeError(f"the engine returned no answer for {len(missing)} request(s)")
                    for unit in batch:
                        unit["status"] = "done"
            finally:
                engine.close()
    except Cancelled:
        store.set_status(run_id, "cancelled", ended=utc_now(), runner_pid=None)
        raise RunCancelled(run_id) from None
    except DiskFull:
        # Writing the status needs disk too; the run then stays 'running' with a
        # dead runner pid, which resume accepts just the same.
        try:
            store.set_status(run_id, "failed", ended=utc_now(), runner_pid=None,
                             last_error="the disk was full")
        except Exception:
            pass
        raise
    except BaseException as exc:
        from auditdesk.core.errors import describe_error

        try:
            store.set_status(run_id, "failed", ended=utc_now(), runner_pid=None,
                             last_error=describe_error(exc) if isinstance(exc, Exception) else type(exc).__name__)
        except Exception:
            pass
        raise
    store.set_status(run_id, "completed", ended=utc_now(), runner_pid=None)
    stats.engine_info = engine_info
    return stats


def _copy_reused_batch(store: Store, run_id: int, batch: list[dict], stats: RunStats) -> bool:
    """Copy the stored answers of a batch whose every pending unit was answered under the same key."""
    from auditdesk.core.runner.reuse import reusable_rows

    pending = [u for u in batch if u["status"] == "pending"]
    if not pending or any(not u.get("reuse_key") for u in pending):
        return False
    found = reusable_rows(store, pending)
    if len(found) < len(pending):
        return False
    stats.units_reused += store.copy_reused(run_id, [(u, found[u["id"]]) for u in pending])
    for unit in pending:
        unit["status"] = "done"
    return True


def _run_likelihood_batch(store: Store, run_id: int, engine: Engine, batch: list[dict], stats: RunStats) -> int:
    t0 = time.monotonic()
    try:
        scores = engine.loglikelihood([u["prompt"] for u in batch])
        errors = [None] * len(batch)
    except Exception as exc:  # one bad sentence must not sink the run
        from auditdesk.core.engine.base import WorkerCrashed

        if isinstance(exc, WorkerCrashed):
            raise
        scores = [(None, None)] * len(batch)
        errors = [str(exc) or type(exc).__name__] * len(batch)
    t1 = time.monotonic()
    stats.generate_seconds += t1 - t0
    stored = 0
    for unit, (logprob, n_tokens), error in zip(batch, scores, errors):
        if unit["status"] != "pending":
            stats.duplicates_discarded += 1
            continue
        if store.record_likelihood(run_id, unit, logprob, n_tokens, error):
            stored += 1
            stats.units_stored += 1
            stats.units_failed += bool(error)
            unit["status"] = "done"
    stats.store_seconds += time.monotonic() - t1
    return stored
