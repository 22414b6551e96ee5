"""Distillation set-ups: what the teacher adds to a round's new items before they are trained on.

- ``answer`` (default): the teacher's remembered answers, as they are.
- ``rationale``: the teacher also writes a short reasoning for each answer, trained as a second task ("Explain: …"
  -> the reasoning) beside the answer task, as in *Distilling step-by-step* (Hsieh et al. 2023). Served questions
  still get the answer task only.
- ``consistency``: the teacher is asked each question again (``distill_samples`` answers in all, re-asked at a
  temperature); only answers it agrees with itself on are taught, the rest are held back (a guard against teaching
  a teacher's slip). Held-back items stay in the memory, not learned, and are checked again next round.
- ``paraphrase``: the teacher writes ``distill_paraphrases`` rewordings of each question, trained with the same
  answer (paraphrased repetitions help fine-tuning inject knowledge, Ovadia et al. 2023).

A teacher that cannot do what a set-up needs (the reference teacher writes no rationales) leaves the round to plain
answers and says so in the round's data summary; a teacher failure on one item costs that item its extras only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from ..core.answers import is_correct
from ..core.errors import InvalidRequestError
from .dataset import Example, normalize_question

if TYPE_CHECKING:
    from ..teachers.base import Teacher

logger = logging.getLogger(__name__)

Setup = Literal["answer", "rationale", "consistency", "paraphrase"]
SETUPS: tuple[Setup, ...] = ("answer", "rationale", "consistency", "paraphrase")
RATIONALE_PREFIX = "Explain: "
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


@dataclass(frozen=True)
class Distilled:
    """The new items to teach, what the set-up adds, and what it held back."""

    setup: Setup
    new: tuple[Example, ...]
    extra: tuple[Example, ...] = ()
    held_back: tuple[dict[str, Any], ...] = ()
    teacher_calls: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "extra": len(self.extra),
            "held_back": list(self.held_back[:20]),
            "held_back_count": len(self.held_back),
            "teacher_calls": self.teacher_calls,
            "notes": list(self.notes),
        }


def distill(
    new: Sequence[Example],
    teacher: Teacher | None,
    setup: str,
    *,
    samples: int = 3,
    paraphrases: int = 3,
    exclude: Container[str] = frozenset(),
) -> Distilled:
    """Apply ``setup`` to the new items with ``teacher``. ``exclude``: normalised questions no training paraphrase
    may be (the gate's held-out paraphrases)."""
    from ..teachers.base import TeacherError

    if setup not in SETUPS:
        msg = f"distillation set-up must be one of {SETUPS}, got {setup!r}"
        raise InvalidRequestError(msg)
    chosen = cast(Setup, setup)
    items = tuple(new)
    if chosen == "answer" or not items:
        return Distilled(chosen, items)
    if teacher is None:
        return Distilled(chosen, items, notes=(f"no teacher is configured: the {chosen} set-up taught plain answers",))
    extra: list[Example] = []
    kept: list[Example] = []
    held_back: list[dict[str, Any]] = []
    notes: list[str] = []
    calls = failures = 0
    for example in items:
        try:
            if setup == "rationale":
                kept.append(example)
                calls += 1
                said = teacher.explain(example.question, example.answer)
                if said is None:
                    notes.append(f"the teacher {teacher.name} writes no rationales: this round taught plain answers")
                    kept.extend(items[len(kept) :])
                    break
                if said.usable and (text := " ".join(said.text.split())):
                    extra.append(
                        Example(f"{example.id}:rationale", RATIONALE_PREFIX + example.question, text, "rationale")
                    )
            elif setup == "paraphrase":
                kept.append(example)
                calls += 1
                said = teacher.paraphrase(example.question, paraphrases)
                if said is None:
                    notes.append(f"the teacher {teacher.name} writes no paraphrases: this round taught plain answers")
                    kept.extend(items[len(kept) :])
                    break
                if said.usable:
                    for number, question in enumerate(
                        _paraphrase_lines(said.text, example.question, exclude)[:paraphrases]
                    ):
                        extra.append(
                            Example(f"{example.id}:p{number}", question, example.answer, "paraphrase", example.accepted)
                        )
            else:  # consistency
                answers = []
                for _ in range(max(1, samples - 1)):
                    calls += 1
                    answers.append(teacher.resample(example.question))
                disagreeing = [a.text for a in answers if not (a.usable and agrees(a.text, example.answer))]
                if disagreeing:
                    held_back.append(
                        {
                            "id": example.id,
                            "question": example.question,
                            "answer": example.answer,
                            "other_answers": disagreeing,
                        }
                    )
                else:
                    kept.append(example)
        except TeacherError as e:
            failures += 1
            if setup == "consistency":
                held_back.append(
                    {"id": example.id, "question": example.question, "answer": example.answer, "error": str(e)}
                )
            logger.warning("distillation (%s) of %r failed: %s", setup, example.question, e)
    if failures:
        notes.append(f"{failures} teacher call(s) failed; those items got no {setup} check or extras")
    return Distilled(chosen, tuple(kept), tuple(extra), tuple(held_back), calls, tuple(notes))


def agrees(one: str, other: str) -> bool:
    """Two answers agree when either contains the other (case, punctuation and articles aside)."""
    return is_correct(one, [other]) or is_correct(other, [one])


def _paraphrase_lines(text: str, question: str, exclude: Container[str]) -> list[str]:
    seen = {normalize_question(question)}
    lines = []
    for raw in text.splitlines():
        line = _NUMBERING.sub("", raw).strip().strip('"').strip()
        key = normalize_question(line)
        if not key or key in seen or key in exclude or len(line) > 500:
            continue
        seen.add(key)
        lines.append(line)
    return lines
