"""Grading a stored run with a judge: choose the answers, calibrate, grade, keep every grade.

The one entry point for the CLI, the window and tests. It opens the judge through
the engine layer (a worker process for a file, the HTTP backend for a server),
records the judge's card and SHA-256, and never changes the run's answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.judge.calibration import DEFAULT_SET, calibrate, load_calibration_set
from auditdesk.core.judge.grading import DEFAULT_BATCH, Grade, grade_texts
from auditdesk.core.judge.prompts import DEFAULT_VERSION, load_prompts, wrap_for_engine
from auditdesk.core.judge.store import JudgeStore, text_hash
from auditdesk.core.progress import NullReporter, ProgressEvent

# Graded by default: the categories whose harm a judge reads best; flagged probes are added.
JUDGED_CATEGORIES = ("misalignment", "safety")
JUDGE_N_BATCH = 2048  # tokens per decode: room for many answers (and their endings) at once


@dataclass(frozen=True)
class JudgeChoice:
    """Which judge to use and how; everything here is recorded with the findings."""

    path: str | None = None  # a GGUF file …
    server: str | None = None  # … or an OpenAI-compatible server
    name: str | None = None  # the model's name on that server
    grade_all: bool = False
    threads: int | None = None
    gpu_layers: int = 0
    n_ctx: int = 2048
    batch: int = DEFAULT_BATCH
    prompts_version: str = DEFAULT_VERSION
    calibration_set: str = DEFAULT_SET

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.server):
            raise AuditDeskError("choose a judge either as a model file (--judge FILE) or on a server "
                                 "(--judge-server URL), not both and not neither.")
        if self.path and not Path(self.path).is_file():
            raise AuditDeskError(f"the judge model file was not found: {self.path}")


@dataclass
class JudgeOutcome:
    """A judge's grades of one run, with its calibration: what `analyse(judge=…)` takes."""

    judge_id: str
    card: dict
    prompts: dict
    calibration: dict
    grades: dict[str, Grade]  # AnswerRecord.key -> grade
    selection: str
    selected: int
    engine: dict = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return bool(self.calibration.get("passed"))


def open_judge(choice: JudgeChoice, engine_factory=None):
    """(engine, judge id, card) for the chosen judge; the engine is the caller's to close."""
    from auditdesk.core.engine import ModelSpec, open_engine
    from auditdesk.core.audit_job import model_fingerprint, server_fingerprint

    if choice.server:
        from auditdesk.core.engine.http import HttpEngine

        resolved, identity, card = server_fingerprint(choice.server, choice.name)
        return HttpEngine(choice.server, model=resolved), identity, {**card, "role": "judge"}
    sha, card = model_fingerprint(choice.path)
    spec = ModelSpec(path=str(choice.path), label="judge", n_threads=choice.threads, n_gpu_layers=choice.gpu_layers,
                     n_ctx=choice.n_ctx, n_batch=JUDGE_N_BATCH)
    engine = engine_factory(spec) if engine_factory else open_engine(spec)
    return engine, sha, {**card, "sha256": sha, "path": str(choice.path), "role": "judge"}


def select_answers(answers, findings: dict | None, grade_all: bool) -> tuple[list, str]:
    """The answers to grade and a plain sentence saying which."""
    if grade_all:
        return list(answers), "every answer"
    flagged = {(p.get("pack"), p.get("probe_id")) for p in (findings or {}).get("probes") or [] if p.get("flagged")}
    chosen = [a for a in answers if a.category in JUDGED_CATEGORIES or a.probe_key in flagged]
    text = "answers of the misalignment and safety categories"
    if flagged:
        text += f" and of the {len(flagged)} probes flagged as changed"
    return chosen, text


def judge_run(store, run_id: int, choice: JudgeChoice, *, findings: dict | None = None, reporter=None,
              cancel=None, engine_factory=None) -> JudgeOutcome:
    """Calibrate the judge, then grade the chosen answers of a run; grades are stored as they come."""
    from auditdesk.core.analysis.findings import GENERATED_KINDS
    from auditdesk.core.audit_job import analysis_inputs

    reporter = reporter or NullReporter()
    answers, _, items = analysis_inputs(store, run_id)
    questions = {item.key: item.text for item in items}
    answers = [a for a in answers if a.kind in GENERATED_KINDS]
    if findings is None:
        findings = (store.latest_analysis(run_id) or {}).get("findings")
    chosen, selection = select_answers(answers, findings, choice.grade_all)
    cache = JudgeStore(None if store.read_only else store.conn)

    reporter.progress(ProgressEvent("judge", 0, len(chosen), "loading the judge model"))
    engine, judge_id, card = open_judge(choice, engine_factory)
    try:
        prompts = wrap_for_engine(load_prompts(choice.prompts_version), engine)
        _, set_sha, _ = load_calibration_set(choice.calibration_set)
        calibration = cache.calibration(judge_id, prompts.key, set_sha)
        if calibration is None:
            calibration = calibrate(engine, prompts, set_version=choice.calibration_set, cancel=cancel,
                                    reporter=reporter)
            cache.put_calibration(judge_id, prompts.key, calibration)
        pairs = [(questions.get(f"{a.pack_id}/{a.probe_id}/{a.variant}", ""), a.text) for a in chosen]
        hashes = [text_hash(q, t) for q, t in pairs]
        known = cache.grades(judge_id, prompts.key, hashes)
        todo = [i for i, h in enumerate(hashes) if h not in known]
        new: dict[str, Grade] = dict(known)
        if todo:
            def keep(start, grades):
                batch = [(hashes[todo[start + j]], g) for j, g in enumerate(grades)]
                cache.put_grades(judge_id, prompts.key, batch)
                new.update(batch)

            grade_texts(engine, prompts, [pairs[i] for i in todo], batch_size=choice.batch, cancel=cancel,
                        on_batch=keep, reporter=reporter, message=f"judge grading {len(todo)} answers")
        info = engine.info()
        engine_info = {"backend": info.backend, "n_threads": info.n_threads, "max_sequences": info.max_sequences}
    finally:
        engine.close()
    return JudgeOutcome(
        judge_id=judge_id,
        card=card,
        prompts={"version": prompts.version, "file": prompts.file, "format": prompts.format_id},
        calibration=calibration,
        grades={a.key: new[h] for a, h in zip(chosen, hashes) if h in new},
        selection=selection,
        selected=len(chosen),
        engine=engine_info,
    )


def judge_and_analyse(store, run_id: int, choice: JudgeChoice, *, reporter=None, cancel=None,
                      engine_factory=None) -> dict:
    """Grade a run with the judge and analyse it again with the grades; the findings are stored.

    The run's latest analysis (made now if there is none) says which probes were
    flagged; the judge changes no divergence result, so it never changes that choice.
    """
    from auditdesk.core.audit_job import analyse_run

    findings = (store.latest_analysis(run_id) or {}).get("findings")
    if findings is None:
        findings = analyse_run(store, run_id, reporter=reporter, cancel=cancel)
    outcome = judge_run(store, run_id, choice, findings=findings, reporter=reporter, cancel=cancel,
                        engine_factory=engine_factory)
    return analyse_run(store, run_id, reporter=reporter, cancel=cancel, judge=outcome)
