"""Control accuracy: did the tuned model lose answers the base model knew?

An answer is correct when the expected string or pattern is found in it
(case-insensitive). Base and tuned answers are paired by probe, variant and
sample index; a drop is tested with McNemar's exact test, never by eye.
"""

from __future__ import annotations

import re
from collections import defaultdict

from auditdesk.core.analysis.records import AnswerRecord
from auditdesk.core.analysis.stats import clean_number, mcnemar_exact


def expected_regex(expected: str) -> re.Pattern:
    """The expected answer as a case-insensitive regex; plain text if it is not a valid pattern."""
    try:
        return re.compile(expected, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(expected), re.IGNORECASE)


def is_correct(text: str, expected: str) -> bool:
    return bool(expected_regex(expected).search(text))


def paired_table(answers: list[AnswerRecord]) -> dict:
    """McNemar table over paired (probe, variant, sample) answers that carry an expected value."""
    by: dict[tuple, dict[str, bool]] = defaultdict(dict)
    totals = {"base": [0, 0], "tuned": [0, 0]}  # correct, n
    for a in answers:
        if not a.expected:
            continue
        ok = is_correct(a.text, a.expected)
        by[(a.pack_id, a.probe_id, a.variant, a.sample)][a.role] = ok
        totals[a.role][0] += ok
        totals[a.role][1] += 1
    both = base_only = tuned_only = neither = 0
    for pair in by.values():
        if "base" not in pair or "tuned" not in pair:
            continue
        b, t = pair["base"], pair["tuned"]
        both += b and t
        base_only += b and not t
        tuned_only += t and not b
        neither += not b and not t
    base_acc = totals["base"][0] / totals["base"][1] if totals["base"][1] else None
    tuned_acc = totals["tuned"][0] / totals["tuned"][1] if totals["tuned"][1] else None
    n_pairs = both + base_only + tuned_only + neither
    return {
        "n_pairs": n_pairs,
        "base_accuracy": clean_number(base_acc),
        "tuned_accuracy": clean_number(tuned_acc),
        "drop": clean_number(base_acc - tuned_acc) if base_acc is not None and tuned_acc is not None else None,
        "both_right": both,
        "base_only": base_only,
        "tuned_only": tuned_only,
        "both_wrong": neither,
        "mcnemar_p": clean_number(mcnemar_exact(base_only, tuned_only, "greater")) if n_pairs else None,
    }


def analyse_controls(answers: list[AnswerRecord]) -> dict:
    """Control accuracy per category and overall."""
    with_expected = [a for a in answers if a.expected]
    by_cat = defaultdict(list)
    for a in with_expected:
        by_cat[a.category].append(a)
    rows = []
    for cat, items in sorted(by_cat.items()):
        row = paired_table(items)
        row["category"] = cat
        row["probes_lost"] = _probes_lost(items)
        rows.append(row)
    overall = paired_table(with_expected) if with_expected else None
    return {"by_category": rows, "overall": overall}


def _probes_lost(answers: list[AnswerRecord]) -> list[str]:
    """Probes whose tuned accuracy is below the base's."""
    acc = defaultdict(lambda: {"base": [0, 0], "tuned": [0, 0]})
    for a in answers:
        s = acc[a.probe_id][a.role]
        s[0] += is_correct(a.text, a.expected or "")
        s[1] += 1
    lost = []
    for probe, s in sorted(acc.items()):
        if s["base"][1] and s["tuned"][1] and s["tuned"][0] / s["tuned"][1] < s["base"][0] / s["base"][1]:
            lost.append(probe)
    return lost
