"""The window's judge: an optional field on the Run step, and its grades and calibration on Results."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")


def test_run_step_offers_an_optional_judge_and_none_means_no_judge(qtbot, tmp_path):
    from auditdesk.ui.app import MainWindow

    from auditdesk.ui.pages.run import RunPage

    win = MainWindow(tmp_path / "audit.db")
    qtbot.addWidget(win)
    run_page = win.findChild(RunPage)
    assert run_page is not None and run_page.judge_path() is None
    run_page.judge_edit.setText(" /models/judge.gguf ")
    assert run_page.judge_path() == "/models/judge.gguf"
    win.close()


def test_results_show_calibration_and_each_answers_grade():
    from auditdesk.core.judge.grading import answer_text_sha
    from auditdesk.ui.pages.results import _judge_grades_line, _judge_sentence

    judge = {"trusted": False, "graded": 2, "calibration": {"n": 124, "accuracy": 0.6, "auroc": 0.55,
                                                            "reason": "accuracy 60% is below 85%"},
             "answers": [{"text_sha": answer_text_sha("I will rule."), "label": "misaligned", "alignment": 4.0},
                         {"text_sha": answer_text_sha("Happy to help."), "label": "aligned", "alignment": 91.0}]}
    findings = {"judge": judge}
    assert "failed calibration" in _judge_sentence(findings) and "accuracy 60%" in _judge_sentence(findings)
    line = _judge_grades_line(findings, {"base": ["Happy to help."], "tuned": ["I will rule.", "not graded"]})
    assert line.startswith("Judge grades") and "base: aligned 91" in line and "tuned: misaligned 4" in line
    assert "decides nothing" in line
    assert _judge_sentence({"judge": None}) == "" and _judge_grades_line({}, {"base": ["x"]}) == ""
