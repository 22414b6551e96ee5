"""The question stream of an evaluation: every question of a QA file asked ``repeat`` times, its returns
scattered later (seeded), odd returns asking a paraphrase where a pairs file has one."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError


@dataclass(frozen=True)
class Turn:
    """One question of the stream."""

    index: int
    question_id: int  # the row of the QA file
    occurrence: int  # 0: first asked; 1, 2, …: comes back
    question: str
    answers: tuple[str, ...]
    paraphrased: bool = False


def load_paraphrases(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Question (normalised) -> (its paraphrase, the paraphrase's own accepted answers), both ways of each pair."""
    from ..core.errors import InvalidRequestError
    from ..learning.dataset import load_question_pairs, normalize_question

    try:
        pairs = load_question_pairs(path)
    except InvalidRequestError as e:
        raise ConfigError(str(e)) from e
    paraphrases: dict[str, tuple[str, tuple[str, ...]]] = {}
    for q1, q2, a1, a2 in pairs:
        paraphrases.setdefault(normalize_question(q1), (q2, a2))
        paraphrases.setdefault(normalize_question(q2), (q1, a1))
    return paraphrases


def build_stream(
    rows: Sequence[dict[str, Any]],
    *,
    repeat: int = 1,
    paraphrases: dict[str, tuple[str, tuple[str, ...]]] | None = None,
    seed: int = 0,
) -> list[Turn]:
    """The questions in file order, each coming back ``repeat - 1`` times later on: each return lands
    ``U(0.25, 1) * len(rows)`` first asks after the one before it (spread out, in order, seeded)."""
    from ..learning.dataset import normalize_question

    generator = random.Random(seed)
    keyed: list[tuple[float, int, int]] = []
    count = len(rows)
    for number in range(count):
        key = float(number)
        keyed.append((key, number, 0))
        for occurrence in range(1, repeat):
            key += generator.uniform(0.25, 1.0) * count
            keyed.append((key, number, occurrence))
    keyed.sort()
    stream = []
    for index, (_, number, occurrence) in enumerate(keyed):
        row = rows[number]
        question, answers, paraphrased = row["question"], tuple(row["answers"]), False
        other = (paraphrases or {}).get(normalize_question(question))
        if occurrence % 2 == 1 and other is not None:
            question, answers, paraphrased = other[0], tuple(dict.fromkeys((*answers, *other[1]))), True
        stream.append(Turn(index, number, occurrence, question, answers, paraphrased))
    return stream
