"""``mentee eval``: replay a stream of questions with accepted answers against a mentee server and measure it.

The stream is built from a QA file (``question`` + ``answers`` per line): every question is asked ``repeat``
times, its returns scattered later in the stream (seeded), and a return is paraphrased where a pairs file
(``q1``/``q2``, as data/near-duplicate-pairs.jsonl) has a paraphrase of it: odd returns ask the paraphrase, even
returns the question again, the way real traffic repeats. Each turn goes through the server's chat route as
a user's would; the report gives, per bucket of turns and overall, the share answered by memory / student /
teacher, teacher calls, tokens and cost avoided, and accuracy (an accepted answer contained in the answer,
normalised as in open-domain QA) overall and by source, beside an always-teacher run on the same stream.

With ``train_every`` a learning round runs after every N teacher answers (the server's admin route), and after
each round the student alone (memory and teacher off, routed as served) is asked everything taught so far (the
learning curve) and an anchor set (forgetting). The report is JSON; the plots are PNG.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.answers import is_correct
from ..core.errors import ConfigError, MenteeError
from .stream import Turn

if TYPE_CHECKING:
    from ..clients.http import MenteeClient
    from ..teachers.base import Teacher

SOURCES = ("memory", "student", "teacher")
FINISHED = ("passed", "refused", "failed", "skipped")


@dataclass(frozen=True)
class EvalOptions:
    """How the stream is replayed; see ``mentee eval --help``."""

    repeat: int = 1
    train_every: int | None = None  # teacher answers between learning rounds
    bucket: int = 100  # turns per bucket of the report
    probe_concurrency: int = 4  # student-alone questions in flight at once after a round
    round_timeout_s: float = 6 * 3600.0
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ConfigError(f"--repeat must be at least 1, got {self.repeat}")
        if self.train_every is not None and self.train_every < 1:
            raise ConfigError(f"--train-every must be at least 1, got {self.train_every}")
        if self.bucket < 1:
            raise ConfigError(f"--bucket must be at least 1, got {self.bucket}")
        if self.probe_concurrency < 1:
            raise ConfigError(f"--probe-concurrency must be at least 1, got {self.probe_concurrency}")


@dataclass
class RoundRecord:
    """A learning round the evaluation started, and what the student alone knew after it."""

    number: int
    after_turn: int  # turns replayed before it started
    teacher_answers: int  # teacher answers in the stream so far
    id: str | None = None
    state: str = "failed"
    adapter: str | None = None
    seconds: float | None = None
    gate: dict[str, Any] | None = None
    error: str | None = None
    taught_so_far: int = 0
    taught_accuracy: float | None = None
    taught_with_adapter: float | None = None  # share of those answers the adapter gave (the rest: the base model)
    anchor_accuracy: float | None = None


@dataclass
class EvalResult:
    turns: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    anchors_before: float | None = None
    seconds: float = 0.0


class Evaluation:
    """Replays a stream through a :class:`MenteeClient` (HTTP or in-process) and measures it."""

    def __init__(
        self,
        client: MenteeClient,
        options: EvalOptions,
        *,
        baseline: Teacher | None = None,
        anchors: Sequence[dict[str, Any]] = (),
        on_turn: Callable[[dict[str, Any]], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        on_round: Callable[[RoundRecord], None] | None = None,
        on_anchors_before: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.baseline = baseline
        self.anchors = list(anchors)
        self.on_turn = on_turn or (lambda turn: None)
        self.on_event = on_event or (lambda message: None)
        self.on_round = on_round or (lambda record: None)
        self.on_anchors_before = on_anchors_before or (lambda accuracy: None)
        self._baseline_cache: dict[str, dict[str, Any]] = {}

    # -- the replay --------------------------------------------------------------------------------------------

    def run(self, stream: Sequence[Turn], *, earlier: EvalResult | None = None) -> EvalResult:
        """Replay ``stream``; with ``earlier`` (a stopped run's turns, rounds and anchors), from where it stopped,
        the round that was due (or cut off) first."""
        started = time.monotonic()
        result = earlier or EvalResult()
        taught: dict[str, tuple[str, ...]] = {}  # remembered question -> accepted answers
        last_round_at = result.rounds[-1].after_turn if result.rounds else 0
        since_round = 0
        for record in result.turns:
            if record["source"] == "teacher":
                since_round += record["index"] >= last_round_at
                if record["remembered_as"]:
                    taught.setdefault(record["remembered_as"], tuple(record["answers"]))
        if self.anchors and self.options.train_every and not result.turns and result.anchors_before is None:
            self.on_event(f"asking the {len(self.anchors)} anchors before any round")
            result.anchors_before = self.student_alone_accuracy(self.anchors)
            self.on_anchors_before(result.anchors_before)

        def round_if_due() -> int:
            if not self.options.train_every or since_round < self.options.train_every:
                return since_round
            record = self.learning_round(len(result.rounds) + 1, result.turns, taught)
            result.rounds.append(record)
            self.on_round(record)
            return 0

        for turn in stream[len(result.turns) :]:
            since_round = round_if_due()
            record = self.ask(turn)
            result.turns.append(record)
            self.on_turn(record)
            if record["source"] == "teacher":
                since_round += 1
                if record["remembered_as"]:
                    taught.setdefault(record["remembered_as"], turn.answers)
        round_if_due()
        result.seconds += time.monotonic() - started
        return result

    def ask(self, turn: Turn) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            text, info, usage = self.client.chat([{"role": "user", "content": turn.question}])
            error = None
        except MenteeError as e:  # a refused or failed turn is a result, not the end of the run
            text, info, usage, error = "", {"source": "error"}, {}, str(e)
        record: dict[str, Any] = {
            **asdict(turn),
            "answers": list(turn.answers),
            "answer": text,
            "source": info.get("source", "error"),
            "correct": bool(text) and is_correct(text, turn.answers),
            "confidence": info.get("confidence"),
            "adapter": info.get("adapter"),
            "remembered_as": info.get("remembered_as"),
            "server_s": info.get("seconds"),
            "client_s": round(time.perf_counter() - started, 4),
            "tokens_in": usage.get("prompt_tokens", 0),
            "tokens_out": usage.get("completion_tokens", 0),
            "error": error,
        }
        if self.baseline is not None:
            always = self.always_teacher(turn)
            record["teacher_alone"] = {
                "correct": is_correct(always["answer"], turn.answers),
                "tokens_in": always["tokens_in"],
                "tokens_out": always["tokens_out"],
            }
        return record

    def always_teacher(self, turn: Turn) -> dict[str, Any]:
        """The teacher's own answer to the turn's question (asked once per distinct question: an always-teacher
        deployment asks it every time, and is charged so in the report)."""
        from ..student.prompting import ChatMessage
        from ..teachers.base import TeacherError

        assert self.baseline is not None
        cached = self._baseline_cache.get(turn.question)
        if cached is None:
            try:
                answer = self.baseline.ask([ChatMessage("user", turn.question)])
                cached = {"answer": answer.text, "tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out}
            except TeacherError as e:
                cached = {"answer": "", "tokens_in": 0, "tokens_out": 0, "error": str(e)}
            self._baseline_cache[turn.question] = cached
        return cached

    # -- learning ----------------------------------------------------------------------------------------------

    def learning_round(
        self, number: int, turns: Sequence[dict[str, Any]], taught: dict[str, tuple[str, ...]]
    ) -> RoundRecord:
        teacher_answers = sum(1 for t in turns if t["source"] == "teacher")
        record = RoundRecord(number=number, after_turn=len(turns), teacher_answers=teacher_answers)
        self.on_event(f"round {number}: after {len(turns)} turns ({teacher_answers} teacher answers)")
        try:
            status = self._run_round()
            record.id, record.state = status["id"], status["state"]
            record.adapter, record.gate, record.error = status.get("adapter"), status.get("gate"), status.get("error")
            record.seconds = status.get("seconds")
        except MenteeError as e:
            record.error = str(e)
        self.on_event(
            f"round {number}: {record.state}"
            + (f", adapter {record.adapter}" if record.adapter else "")
            + (f" ({record.error})" if record.error else "")
        )
        probes = [{"question": q, "answers": list(a)} for q, a in taught.items()]
        record.taught_so_far = len(probes)
        if probes:
            record.taught_accuracy, record.taught_with_adapter = self._student_alone(probes)
        if self.anchors:
            record.anchor_accuracy = self.student_alone_accuracy(self.anchors)
        self.on_event(
            f"round {number}: the student alone knows {record.taught_accuracy} of {record.taught_so_far} taught, "
            f"anchors {record.anchor_accuracy}; the gate's retention of earlier rounds "
            f"{(record.gate or {}).get('retention')}, round {record.seconds} s"
        )
        return record

    def _run_round(self) -> dict[str, Any]:
        from ..clients.http import MenteeClientError

        deadline = time.monotonic() + self.options.round_timeout_s
        while True:
            try:
                job = self.client.train()
                break
            except MenteeClientError as e:
                running = e.error.get("round_id") if e.status == 409 else None
                if not isinstance(running, str):
                    raise  # not a running round, or one another worker runs (its progress is not here)
                self.on_event(f"waiting for the round already running ({running})")
                self._wait_for(running, deadline)
        return self._wait_for(job["id"], deadline)

    def _wait_for(self, job_id: str, deadline: float) -> dict[str, Any]:
        last = ""
        while time.monotonic() < deadline:
            status = self.client.train_status(job_id)
            if status["state"] in FINISHED:
                return status
            progress = status.get("progress") or {}
            line = (
                f"{progress.get('phase', status['state'])} {progress.get('step', '')}/{progress.get('total_steps', '')}"
            )
            if line != last:
                self.on_event(f"  {job_id}: {line.strip(' /')}")
                last = line
            time.sleep(2.0)
        msg = f"the learning round {job_id} did not finish within {self.options.round_timeout_s:.0f} s"
        raise MenteeError(msg)

    def student_alone_accuracy(self, rows: Sequence[dict[str, Any]]) -> float:
        """Share of ``rows`` the student answers right with memory and teacher off (nothing is remembered)."""
        return self._student_alone(rows)[0]

    def _student_alone(self, rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
        """(share answered right, share answered with an adapter) by the student alone."""

        def right(row: dict[str, Any]) -> tuple[bool, bool]:
            try:
                text, info, _ = self.client.chat(
                    [{"role": "user", "content": row["question"]}], memory=False, teacher=False, learn=False
                )
            except MenteeError:
                return False, False
            return is_correct(text, row["answers"]), info.get("adapter") is not None

        with ThreadPoolExecutor(self.options.probe_concurrency, thread_name_prefix="mentee-eval") as pool:
            outcomes = list(pool.map(right, rows))
        if not outcomes:
            return 0.0, 0.0
        return (
            round(sum(o[0] for o in outcomes) / len(outcomes), 4),
            round(sum(o[1] for o in outcomes) / len(outcomes), 4),
        )


class TurnCounter:
    """Running shares and accuracy for the progress bar."""

    def __init__(self) -> None:
        self.sources: Counter[str] = Counter()
        self.correct = 0
        self.turns = 0

    def add(self, turn: dict[str, Any]) -> dict[str, str]:
        self.turns += 1
        self.sources[turn["source"]] += 1
        self.correct += bool(turn["correct"])
        shares = {source: f"{self.sources[source] / self.turns:.2f}" for source in SOURCES}
        return {**shares, "accuracy": f"{self.correct / self.turns:.2f}"}
