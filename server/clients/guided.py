"""The guided "watch it learn" run: the whole loop shown on a handful of example questions, through a running
mentee server's own routes (chat completions, the train route), in the guided run's own memory so the users'
memory is untouched.

1. the student alone is asked each example (memory and teacher off): *before*;
2. each example is asked as a user would: the teacher answers, the memory keeps it;
3. each example's paraphrase is asked: the memory answers;
4. a learning round on those items, its progress passed on as it comes;
5. the student alone is asked each example again: *after*.

A student answer is right when it contains the teacher's answer (mentee's answer matching). Needs the admin key
(the guided memory feeds a round) and a teacher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.answers import is_correct
from ..core.errors import MenteeError
from .http import MenteeClient, MenteeClientError

logger = logging.getLogger(__name__)

FINAL_STATES = ("passed", "refused", "failed", "skipped")
TABLE_COLUMNS = ["question", "teacher", "paraphrase from", "student before", "student after"]


@dataclass
class GuidedRow:
    """One example's way through the run."""

    question: str
    paraphrase: str | None
    before: str = ""
    before_right: bool = False
    teacher_answer: str = ""
    source: str = ""  # who answered the question asked as a user would (the teacher, unless already remembered)
    paraphrase_source: str = ""
    after: str = ""
    after_right: bool = False
    after_adapter: str | None = None


@dataclass
class GuidedResult:
    rows: list[GuidedRow] = field(default_factory=list)
    round: dict[str, Any] = field(default_factory=dict)  # the round's job as the train route reports it
    seconds: dict[str, float] = field(default_factory=dict)  # per step

    @property
    def right_before(self) -> int:
        return sum(r.before_right for r in self.rows)

    @property
    def right_after(self) -> int:
        return sum(r.after_right for r in self.rows)

    def table(self) -> list[list[str]]:
        """Rows of :data:`TABLE_COLUMNS` (answers marked right or wrong)."""

        def marked(answer: str, right: bool) -> str:
            return f"{'right' if right else 'wrong'}: {answer or '(no answer)'}"

        return [
            [
                r.question,
                r.teacher_answer,
                r.paraphrase_source or "-",
                marked(r.before, r.before_right),
                marked(r.after, r.after_right),
            ]
            for r in self.rows
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "round": {k: self.round.get(k) for k in ("id", "state", "adapter", "error", "seconds", "gate")},
            "right_before": self.right_before,
            "right_after": self.right_after,
            "seconds": self.seconds,
        }


class GuidedRun:
    """One guided run against the server behind ``client`` (which needs the admin key)."""

    def __init__(
        self,
        client: MenteeClient,
        *,
        limit: int = 10,
        on_event: Callable[[str], None] | None = None,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 2.0,
        round_timeout_s: float = 3600.0,
    ) -> None:
        self.client = client
        self.limit = limit
        self.on_event = on_event or (lambda message: None)
        self.on_round = on_round or (lambda job: None)
        self.poll_s = poll_s
        self.round_timeout_s = round_timeout_s

    def run(self) -> GuidedResult:
        about = self.client.about()
        if (about.get("teacher") or {}).get("kind") == "none":
            msg = "the guided run needs a teacher: connect one (MENTEE_TEACHER_URL, or MENTEE_TEACHER_QA_FILE)"
            raise MenteeError(msg)
        examples = [e for e in about.get("examples") or [] if e.get("paraphrase")][: self.limit]
        if not examples:
            msg = "the server offers no example questions with paraphrases (examples_file)"
            raise MenteeError(msg)
        result = GuidedResult(rows=[GuidedRow(e["question"], e["paraphrase"]) for e in examples])
        cleared = self.client.clear_guided()
        self.on_event(f"guided run on {len(result.rows)} examples (its own memory; {cleared} earlier items forgotten)")

        with self._step(result, "before"):
            for row in result.rows:
                row.before, _ = self._alone(row.question)
        with self._step(result, "teacher"):
            for row in result.rows:
                row.teacher_answer, info = self._ask(row.question)
                row.source = info.get("source", "")
                self.on_event(f"{row.question} -> {row.teacher_answer} ({row.source})")
        for row in result.rows:
            row.before_right = bool(row.teacher_answer) and is_correct(row.before, [row.teacher_answer])
        with self._step(result, "paraphrases"):
            for row in result.rows:
                assert row.paraphrase is not None
                _, info = self._ask(row.paraphrase)
                row.paraphrase_source = info.get("source", "")
                self.on_event(f"{row.paraphrase} -> {row.paraphrase_source}")
        with self._step(result, "round"):
            result.round = self._learn()
        with self._step(result, "after"):
            for row in result.rows:
                row.after, info = self._alone(row.question)
                row.after_adapter = info.get("adapter")
                row.after_right = bool(row.teacher_answer) and is_correct(row.after, [row.teacher_answer])
        self.on_event(
            f"the student alone: {result.right_before} of {len(result.rows)} right before the round, "
            f"{result.right_after} after (round {result.round.get('state')})"
        )
        return result

    # -- steps -------------------------------------------------------------------------------------------------

    def _step(self, result: GuidedResult, name: str) -> _Timed:
        self.on_event(f"step: {name}")
        return _Timed(result.seconds, name)

    def _ask(self, question: str, **switches: bool) -> tuple[str, dict[str, Any]]:
        text, info, _ = self.client.chat([{"role": "user", "content": question}], guided=True, **switches)
        return text, info

    def _alone(self, question: str) -> tuple[str, dict[str, Any]]:
        """The student's own answer (no memory, no teacher, nothing remembered); ``""`` when it had none."""
        try:
            return self._ask(question, memory=False, teacher=False, learn=False)
        except MenteeClientError as e:
            if e.no_source:
                return "", {}
            raise

    def _learn(self) -> dict[str, Any]:
        job = self.client.train(guided=True)
        self.on_round(job)
        deadline = time.monotonic() + self.round_timeout_s
        while job.get("state") not in FINAL_STATES:
            if time.monotonic() > deadline:
                msg = f"the guided run's round {job.get('id')} did not end within {self.round_timeout_s:.0f} s"
                raise MenteeError(msg)
            time.sleep(self.poll_s)
            job = self.client.train_status(job["id"])
            self.on_round(job)
        return job


class _Timed:
    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        self.seconds[self.name] = round(time.monotonic() - self.started, 1)
