"""Calibration of the student's confidence threshold from data, not guesses.

``mentee calibrate FILE.jsonl`` asks the student each question of a QA file (``question`` + accepted
``answers``), marks each answer right or wrong the open-QA way (an accepted string contained in the answer,
case-folded, punctuation and articles removed), and picks the lowest confidence threshold at which the
answers the student would give itself are right at least ``target_precision`` of the time. It reports the
AUROC of confidence against correctness and the chosen point; the result is saved in mentee's home.
Re-calibrate after each new adapter: a new adapter changes what the confidence means.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.answers import is_correct
from ..core.errors import InvalidRequestError
from ..core.files import write_json

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and the evidence for it."""

    threshold: float
    target_precision: float
    precision: float | None  # of the answers at or above the threshold; None if there are none
    coverage: float  # share of questions the student would answer itself
    auroc: float | None  # None when every answer was right, or every one wrong
    questions: int
    correct: int
    achievable: bool  # False: no threshold reaches the target; the student then never answers alone
    adapter: str | None = None
    created_at: float = 0.0
    source: str | None = None  # the QA file it was measured on (re-used after each new adapter)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(
    points: Sequence[tuple[float, bool]],
    *,
    target_precision: float = 0.9,
    adapter: str | None = None,
    source: str | None = None,
) -> Calibration:
    """The lowest threshold whose accepted answers reach ``target_precision`` (the most coverage at that
    precision), from (confidence, correct) points."""
    if not points:
        msg = "no calibration points: the QA file had no usable questions"
        raise InvalidRequestError(msg)
    if not 0.0 < target_precision <= 1.0:
        msg = f"target precision must be in (0, 1], got {target_precision}"
        raise InvalidRequestError(msg)
    ranked = sorted(points, key=lambda p: p[0], reverse=True)
    best: tuple[float, float | None, float] | None = None  # threshold, precision, coverage
    right = 0
    for index, (confidence, correct) in enumerate(ranked, start=1):
        right += correct
        next_confidence = ranked[index][0] if index < len(ranked) else None
        if next_confidence == confidence:
            continue  # a threshold cannot split equal confidences
        precision = right / index
        if precision >= target_precision:
            best = (confidence, precision, index / len(ranked))
    # With no threshold reaching the target, the student never answers alone (a threshold above 1).
    threshold, precision, coverage = best if best is not None else (1.0 + 1e-9, None, 0.0)
    return Calibration(
        threshold=threshold,
        target_precision=target_precision,
        precision=round(precision, 4) if precision is not None else None,
        coverage=round(coverage, 4),
        auroc=_auroc(points),
        questions=len(points),
        correct=sum(1 for _, c in points if c),
        achievable=best is not None,
        adapter=adapter,
        created_at=time.time(),
        source=source,
    )


def _auroc(points: Sequence[tuple[float, bool]]) -> float | None:
    labels = [bool(c) for _, c in points]
    if all(labels) or not any(labels):
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(labels, [p for p, _ in points])), 4)


def measure(
    ask: Callable[[str], tuple[str, float]], rows: Iterable[dict[str, Any]], *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Ask each row's question; its answer, confidence and correctness."""
    results = []
    for number, row in enumerate(rows):
        if limit is not None and number >= limit:
            break
        answer, confidence = ask(row["question"])
        results.append(
            {
                "question": row["question"],
                "answer": answer,
                "confidence": confidence,
                "correct": is_correct(answer, row["answers"]),
            }
        )
    return results


def save_calibration(home: Path, calibration: Calibration) -> Path:
    """Write the calibration into mentee's home (temp file, then rename)."""
    return write_json(home / CALIBRATION_FILE, calibration.to_dict())


def load_calibration(home: Path) -> Calibration | None:
    """The saved calibration, or ``None`` if mentee was never calibrated here."""
    path = home / CALIBRATION_FILE
    if not path.is_file():
        return None
    return Calibration(**json.loads(path.read_text()))
