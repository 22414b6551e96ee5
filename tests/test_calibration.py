"""Calibration: open-QA correctness, the threshold for a target precision, the AUROC, saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentee.server.core.answers import is_correct, normalize_answer
from mentee.server.core.errors import InvalidRequestError
from mentee.server.serving.calibration import choose_threshold, load_calibration, measure, save_calibration


@pytest.mark.parametrize(
    ("answer", "accepted", "correct"),
    [
        ("Paris", ["Paris"], True),
        ("The city of Paris, France.", ["paris"], True),
        ("the Beatles", ["The Beatles"], True),
        ("Parisian", ["Paris"], False),  # whole words only
        ("London", ["Paris", "City of Light"], False),
        ("", ["Paris"], False),
        ("in the epididymis", ["epididymis"], True),
        ("\u2018Kublai Khan\u2019", ["Kublai Khan"], True),
    ],
)
def test_open_qa_correctness(answer: str, accepted: list[str], correct: bool) -> None:
    assert is_correct(answer, accepted) is correct


def test_normalisation() -> None:
    assert normalize_answer("  The  Rolling Stones! ") == "rolling stones"


def test_threshold_reaches_the_target_precision_with_most_coverage() -> None:
    points = [(0.95, True), (0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False), (0.2, False)]
    calibration = choose_threshold(points, target_precision=0.75)
    assert calibration.threshold == 0.6  # 4 of the 5 at or above 0.6 are right: 0.8 >= 0.75
    assert calibration.precision == 0.8
    assert calibration.coverage == pytest.approx(5 / 7, abs=1e-4)
    assert calibration.achievable
    assert calibration.auroc == pytest.approx(11 / 12, abs=1e-4)
    strict = choose_threshold(points, target_precision=1.0)
    assert strict.threshold == 0.8


def test_ties_are_not_split_and_an_unreachable_target_is_said() -> None:
    tied = choose_threshold([(0.9, True), (0.9, False), (0.1, False)], target_precision=0.9)
    assert not tied.achievable
    assert tied.threshold > 1.0  # the student never answers alone
    assert tied.coverage == 0.0
    with pytest.raises(InvalidRequestError, match="no calibration points"):
        choose_threshold([])
    with pytest.raises(InvalidRequestError, match="target precision"):
        choose_threshold([(0.5, True)], target_precision=0)


def test_measure_save_and_load(tmp_path: Path) -> None:
    rows = [{"question": "capital of France?", "answers": ["Paris"]}, {"question": "2+2?", "answers": ["4"]}]
    results = measure(lambda q: ("Paris", 0.9) if "France" in q else ("5", 0.3), rows)
    assert [r["correct"] for r in results] == [True, False]
    calibration = choose_threshold([(r["confidence"], r["correct"]) for r in results], adapter="student-v1")
    path = save_calibration(tmp_path, calibration)
    assert json.loads(path.read_text())["threshold"] == 0.9
    assert load_calibration(tmp_path) == calibration
    assert load_calibration(tmp_path / "elsewhere") is None
