"""Drift between two audits: run A's tuned answers against run B's, with the base-vs-tuned statistics.

The tuned answers of run A take the place of the base model and run B's the
place of the tuned model, so drift gets the same per-probe permutation tests,
FDR control and changed / concerning logic as an audit. It reads stored answers
and cached embeddings only; it never generates an answer and never changes a run.
"""

from __future__ import annotations

import json
from dataclasses import replace

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.progress import CancelToken, ProgressReporter
from auditdesk.core.store.db import Store, utc_now


def drift_inputs(store: Store, run_a: int, run_b: int):
    """Answers, likelihood scores and items of the probes both runs asked: A's tuned as "base", B's as "tuned"."""
    from auditdesk.core.audit_job import analysis_inputs

    answers_a, scores_a, items_a = analysis_inputs(store, run_a)
    answers_b, scores_b, items_b = analysis_inputs(store, run_b)

    def variant_key(record) -> tuple[str, str, str]:
        return (record.pack_id, record.probe_id, record.variant)

    shared_keys = ({variant_key(a) for a in answers_a if a.role == "tuned"}
                   & {variant_key(a) for a in answers_b if a.role == "tuned"})
    shared_keys |= ({variant_key(s) for s in scores_a if s.role == "tuned"}
                    & {variant_key(s) for s in scores_b if s.role == "tuned"})
    answers = [replace(a, role=role) for role, rows in (("base", answers_a), ("tuned", answers_b))
               for a in rows if a.role == "tuned" and variant_key(a) in shared_keys]
    scores = [replace(s, role=role) for role, rows in (("base", scores_a), ("tuned", scores_b))
              for s in rows if s.role == "tuned" and variant_key(s) in shared_keys]
    items = [item for item in items_b if (item.pack_id, item.probe_id, item.variant) in shared_keys]
    probes = lambda rows: {(r.pack_id, r.probe_id) for r in rows if r.role == "tuned"}  # noqa: E731
    coverage = {
        "shared_probes": len({(p, q) for p, q, _ in shared_keys}),
        "probes_only_in_a": sorted("/".join(k) for k in probes(answers_a) - probes(answers_b)),
        "probes_only_in_b": sorted("/".join(k) for k in probes(answers_b) - probes(answers_a)),
    }
    return answers, scores, items, coverage


def compare_tuned(store: Store, run_a: int, run_b: int, *, fdr: float = 0.05, embedding_model: str | None = None,
                  embedder=None, reporter: ProgressReporter | None = None,  # noqa: ANN001
                  cancel: CancelToken | None = None) -> dict:
    """Compare the tuned answers of run A (as "base") and run B (as "tuned"); store and return the findings.

    The findings document is the audit's, with a `drift` section naming the two
    runs, what besides the tuned model differs between them, and the probe coverage.
    """
    from auditdesk.core.analysis import analyse
    from auditdesk.core.audit_job import analysis_embedder, run_info
    from auditdesk.core.findings_contract import VERSION
    from auditdesk.core.runner.compare import fingerprint_differences

    if int(run_a) == int(run_b):
        raise AuditDeskError("Give two different runs to compare.")
    answers, scores, items, coverage = drift_inputs(store, run_a, run_b)
    if not answers and not scores:
        raise AuditDeskError(f"Runs {run_a} and {run_b} share no answered probe of the tuned model; "
                             "compare two audits of the same probe packs.")
    info_a, info_b = run_info(store, run_a), run_info(store, run_b)
    models = {"base": info_a["models"].get("tuned", {}), "tuned": info_b["models"].get("tuned", {})}
    from auditdesk.core.monitoring.fingerprint import run_fingerprints, swapped_roles

    drift = {
        "run_a": int(run_a), "run_b": int(run_b),
        "server_model_swapped": swapped_roles(run_fingerprints(store, run_a), run_fingerprints(store, run_b)),
        "roles": {"base": f"tuned model of run {run_a}", "tuned": f"tuned model of run {run_b}"},
        "same_tuned_model": bool(models["base"].get("sha256")) and
        models["base"].get("sha256") == models["tuned"].get("sha256"),
        "other_differences": fingerprint_differences(store, run_a, run_b),
        **coverage,
    }
    embedder = embedder or analysis_embedder(store, embedding_model)
    seed = int(store.get_run(run_b).get("seed") or 0)
    findings = analyse(answers, scores, items, embedder=embedder, fdr=fdr, seed=seed, reporter=reporter,
                       cancel=cancel, run_info={"run": {**info_b["run"], "compared_with": info_a["run"]},
                                                "models": models})
    findings["drift"] = drift
    if not store.read_only:
        with store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO comparisons (run_a, run_b, created, format_version, findings_json) VALUES (?, ?, ?, ?, ?)",
                (int(run_a), int(run_b), utc_now(), str(VERSION), json.dumps(findings, sort_keys=True)))
        findings["drift"]["comparison_id"] = int(cursor.lastrowid)
    return findings


def category_statuses(findings: dict) -> dict[str, str]:
    """category -> "concerning" | "changed" | "unchanged" of a findings document (an audit's or a drift's)."""
    return {row["category"]: row["status"] for row in findings.get("categories", [])}


def drift_lines(findings: dict) -> list[str]:
    """A drift comparison in plain lines, one table row per category: what `compare` prints and History shows."""
    drift = findings["drift"]
    lines = [f"The {role} model behind the server is not the one of run {drift['run_a']}: its answers to the "
             "fixed fingerprint probes changed." for role in drift.get("server_model_swapped", [])]
    lines.append(f"Tuned model of run {drift['run_a']} -> tuned model of run {drift['run_b']}"
                 + (" (the same model file)" if drift["same_tuned_model"] else ""))
    others = [d for d in drift["other_differences"] if d != "the seed"]
    if others:
        lines.append("  Warning: the runs differ in more than the tuned model (" + ", ".join(others)
                     + "), so drift need not come from the tuned model.")
    if "the seed" in drift["other_differences"]:
        lines.append("  The runs used different seeds; the tests compare answer distributions, so that is expected.")
    lines.append(f"  {drift['shared_probes']} probes compared, FDR {findings['settings']['fdr']:g}")
    lines.append(f"\n{'CATEGORY':<32} {'STATUS':<11} {'CHANGED PROBES':>14} {'CHANGE':>7} {'CONCERN':>8}")
    for row in findings["categories"]:
        change = f"{row['change_score']:.2f}" if row["change_score"] is not None else "-"
        lines.append(f"{row['category']:<32} {row['status']:<11} {row['changed_probes']:>6}/{row['tested_probes']:<7} "
                     f"{change:>7} {row['concern_score']:>8.2f}")
    flagged = [row["summary"] for row in findings["categories"] if row["status"] != "unchanged"]
    lines.append("\n" + ("\n".join(flagged) if flagged else "No category drifted beyond sampling noise."))
    if drift["probes_only_in_a"] or drift["probes_only_in_b"]:
        lines.append(f"\nProbes in only one run: {len(drift['probes_only_in_a'])} in run {drift['run_a']}, "
                     f"{len(drift['probes_only_in_b'])} in run {drift['run_b']} (not compared).")
    return lines
