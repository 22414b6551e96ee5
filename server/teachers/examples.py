"""What a newcomer is offered to ask: example questions, each with a paraphrase to try next, and a summary of
the teacher connected (so the chat can say what it knows and how to connect another).

The examples are ``examples_file`` when set; else the packaged Natural Questions examples (``data/``) when the
teacher can answer them (an LLM teacher, or the reference teacher on a file that holds them); else, for a
reference teacher on a file of its own, its first questions (no paraphrase: none is known to be served).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from ..core.files import read_jsonl
from .reference import ReferenceTeacher

if TYPE_CHECKING:
    from ..core.config import Settings
    from .base import Teacher

PACKAGED_EXAMPLES = Path(__file__).with_name("data") / "nq-examples.jsonl"
MAX_EXAMPLES = 8
MIN_PACKAGED_KNOWN = 3  # fewer of the packaged examples in a reference teacher's file: its own questions instead


@dataclass(frozen=True)
class ExampleQuestion:
    question: str
    paraphrase: str | None = None  # the same question reworded: the memory answers it once the teacher has

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_examples(path: Path) -> list[ExampleQuestion]:
    """An examples file (JSON Lines: ``question``, optional ``paraphrase``); a clear error naming a bad line."""
    examples = []
    for number, row in read_jsonl(path, "examples file", ConfigError):
        question = row.get("question") if isinstance(row, dict) else None
        paraphrase = row.get("paraphrase") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip() or not isinstance(paraphrase, str | None):
            msg = f"examples file {str(path)!r}, line {number}: needs a 'question' (and optionally a 'paraphrase')"
            raise ConfigError(msg)
        examples.append(ExampleQuestion(question.strip(), paraphrase.strip() if paraphrase else None))
    return examples


def _inner(teacher: Teacher | None) -> Teacher | None:
    return getattr(teacher, "inner", teacher)  # a GuardedTeacher's own teacher


def examples_for(settings: Settings, teacher: Teacher | None) -> list[ExampleQuestion]:
    """The example questions the chat offers with this teacher (at most :data:`MAX_EXAMPLES`)."""
    if settings.examples_file:
        return read_examples(Path(settings.examples_file))[:MAX_EXAMPLES]
    packaged = read_examples(PACKAGED_EXAMPLES)
    inner = _inner(teacher)
    if isinstance(inner, ReferenceTeacher):
        knows = {row["question"] for row in inner.rows}
        known = [e for e in packaged if e.question in knows]
        if len(known) < MIN_PACKAGED_KNOWN:
            return [ExampleQuestion(row["question"]) for row in inner.rows[:MAX_EXAMPLES]]
        packaged = known
    return packaged[:MAX_EXAMPLES]


def teacher_summary(teacher: Teacher | None) -> dict[str, Any]:
    """Which teacher is connected, without its address or keys: ``kind`` (reference, openai, langchain, none),
    ``name``, and for the reference teacher its file's name and how many questions it knows."""
    if teacher is None:
        return {"kind": "none", "name": None}
    inner = _inner(teacher)
    summary: dict[str, Any] = {"kind": teacher.name.split(":", 1)[0], "name": teacher.name}
    if isinstance(inner, ReferenceTeacher):
        summary |= {"kind": "reference", "file": inner.path.name, "questions": len(inner.rows)}
    return summary
