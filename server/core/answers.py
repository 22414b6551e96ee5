"""Whether an answer is right, the open-QA way: an accepted string contained in the answer, both case-folded,
without punctuation and articles. The router, the gate, the dataset, distillation, calibration, the evaluation and
the benchmarks all judge answers with this one rule."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "\u2018\u2019\u201c\u201d")


def normalize_answer(text: str) -> str:
    """Lower-cased, without punctuation, articles and extra spaces (as open-domain QA evaluation does)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def is_correct(answer: str, accepted: Iterable[str]) -> bool:
    """Whether ``answer`` contains one of the ``accepted`` strings, both normalised."""
    said = normalize_answer(answer)
    if not said:
        return False
    return any(a and re.search(rf"(^| ){re.escape(a)}($| )", said) for a in map(normalize_answer, accepted))
