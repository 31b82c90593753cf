"""Judge grades and calibrations kept in the audit database, keyed by content.

A grade depends only on (judge, prompt texts, question, answer), so it is cached
under those: a cancelled grading resumes where it stopped and a second run with the
same answers costs nothing. Tables are created on first use, like the embeddings
cache; each batch is written in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Sequence

from auditdesk.core.judge.grading import Grade

_TABLES = (
    """CREATE TABLE IF NOT EXISTS judge_grades (
        judge_id TEXT NOT NULL, prompts TEXT NOT NULL, text_hash TEXT NOT NULL, grade_json TEXT NOT NULL,
        PRIMARY KEY (judge_id, prompts, text_hash))""",
    """CREATE TABLE IF NOT EXISTS judge_calibrations (
        judge_id TEXT NOT NULL, prompts TEXT NOT NULL, set_sha256 TEXT NOT NULL, result_json TEXT NOT NULL,
        PRIMARY KEY (judge_id, prompts, set_sha256))""",
)


def text_hash(question: str, answer: str) -> str:
    return hashlib.sha256(f"{question}\x00{answer}".encode("utf-8")).hexdigest()


class JudgeStore:
    """Grades and calibrations of judges in one SQLite connection (None: nothing is kept)."""

    def __init__(self, conn) -> None:
        self.conn = conn
        if conn is not None:
            with conn:
                for sql in _TABLES:
                    conn.execute(sql)

    def grades(self, judge_id: str, prompts: str, hashes: Sequence[str]) -> dict[str, Grade]:
        found: dict[str, Grade] = {}
        if self.conn is None:
            return found
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            for h, text in self.conn.execute(
                f"SELECT text_hash, grade_json FROM judge_grades WHERE judge_id = ? AND prompts = ? AND text_hash IN ({marks})",
                [judge_id, prompts, *chunk],
            ):
                found[h] = Grade.from_dict(json.loads(text))
        return found

    def put_grades(self, judge_id: str, prompts: str, items: Iterable[tuple[str, Grade]]) -> None:
        rows = [(judge_id, prompts, h, json.dumps(g.to_dict())) for h, g in items]
        if self.conn is None or not rows:
            return
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO judge_grades VALUES (?, ?, ?, ?)", rows)

    def calibration(self, judge_id: str, prompts: str, set_sha256: str) -> dict | None:
        if self.conn is None:
            return None
        row = self.conn.execute(
            "SELECT result_json FROM judge_calibrations WHERE judge_id = ? AND prompts = ? AND set_sha256 = ?",
            (judge_id, prompts, set_sha256),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put_calibration(self, judge_id: str, prompts: str, result: dict) -> None:
        if self.conn is None:
            return
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO judge_calibrations VALUES (?, ?, ?, ?)",
                              (judge_id, prompts, result["set_sha256"], json.dumps(result)))
