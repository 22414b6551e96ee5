"""The whole teaching loop in one object: the student, the memory, the teacher, the router, and the stats.

:class:`Mentee` is what ``mentee ask`` runs in-process and what the API server serves. It builds each part from
the settings (or takes ready ones, e.g. a LangChain chat model as teacher), picks the confidence threshold (the
configured one, else the saved calibration), and counts every answer by source, so the stats can say how many
teacher calls were avoided and what they would have cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from .core.config import Settings
from .core.errors import MenteeError
from .serving.calibration import Calibration, load_calibration
from .serving.router import RoutedAnswer, Router, StudentLike, Switches
from .serving.stats import AnswerCounts
from .student.prompting import ChatMessage

if TYPE_CHECKING:
    from ..memory.embedder import Embedder
    from ..memory.store import Memory
    from .learning.adapters import AdapterStore, AdapterVersion
    from .learning.round import Learner
    from .learning.runner import RoundRunner
    from .teachers.base import GuardedTeacher, Teacher
    from .teachers.examples import ExampleQuestion

logger = logging.getLogger(__name__)

UNCALIBRATED_THRESHOLD = 0.5
GUIDED_SUFFIX = ".guided"  # the guided run's memory namespace: the deployment's with this appended
GUIDED_PREFIX_CHARS = 64 - len(GUIDED_SUFFIX)  # namespaces are at most 64 characters


class Mentee:
    """Memory, student and teacher behind one ``answer`` call; start it (or use ``with``) before asking."""

    def __init__(
        self,
        settings: Settings,
        *,
        student: StudentLike | None = None,
        memory: Memory | None = None,
        teacher: Teacher | None = None,
        chat_model: Any = None,
        embedder: Embedder | None = None,
        use_memory: bool = True,
        adapter: str | None = None,
    ) -> None:
        """Parts passed in are used as they are (and not closed by :meth:`close`); the others are built from the
        settings when :meth:`start` runs. ``chat_model`` is a LangChain chat model to use as teacher; ``adapter``
        a LoRA adapter loaded in vLLM that the student answers with."""
        self.settings = settings
        self.student = student
        self.memory = memory
        self.teacher = teacher
        self._chat_model = chat_model
        self._embedder = embedder
        self._use_memory = use_memory
        self.adapter = adapter
        self._owned: list[Any] = []
        self.router: Router | None = None
        self.calibration: Calibration | None = None
        self.started_at = time.time()
        self.adapters: AdapterStore | None = None
        self._learner: Learner | None = None
        self._rounds: RoundRunner | None = None
        self._adapter_checked = 0.0
        self._switch_lock = threading.Lock()
        self.counts = AnswerCounts(settings.home)
        self.examples: list[ExampleQuestion] = []
        self._guided: Router | None = None
        self._guided_learner: Learner | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the memory, set up the teacher and start (or connect to) the student."""
        if self.router is not None:
            return self
        try:
            if self.memory is None and self._use_memory:
                from ..memory.store import Memory

                self.memory = self._own(Memory.from_settings(self.settings, embedder=self._embedder))
            if self.teacher is None:
                from .teachers import make_teacher

                embedder = self._embedder or (self.memory.embedder if self.memory is not None else None)
                made = make_teacher(self.settings, chat_model=self._chat_model, embedder=embedder)
                self.teacher = self._own(made) if made is not None else None
            if self.student is None:
                from .student.client import Student

                student = Student(self.settings)
                student.on_restart = self._student_restarted
                self.student = self._own(student.start())
        except BaseException:
            self.close()
            raise
        self.calibration = load_calibration(self.settings.home)
        from .teachers.examples import examples_for

        self.examples = examples_for(self.settings, self.teacher)  # a bad examples_file is said at start-up
        self.router = self._router(self.memory)
        if self.teacher is None:
            logger.warning("no teacher is configured: the student answers what the memory cannot")
        if hasattr(self.student, "load_adapter"):
            from .learning.adapters import AdapterStore, load_named

            store = AdapterStore(self.settings.home / "adapters")
            if self.adapter is not None:
                load_named(self.student, store, self.adapter)  # type: ignore[arg-type]
            else:
                self.adapters = store
                self.follow_active_adapter(force=True)  # after a restart, the active version is served again
        return self

    def _router(self, memory: Memory | None) -> Router:
        return Router(
            self.student,  # type: ignore[arg-type]
            memory=memory,
            teacher=self.teacher,
            threshold=self.threshold,
            adapter=self.adapter,
            strict=self.settings.strict,
            context_items=self.settings.teacher_context_items,
            context_distance=self.settings.teacher_context_distance,
            adapter_scope=self.settings.adapter_scope,
            adapter_scope_distance=self.settings.adapter_scope_distance,
            max_question_chars=self.settings.question_max_chars,
            reask_alone=self.settings.teacher_reask_alone,
        )

    def close(self) -> None:
        """Close what :meth:`start` opened (the memory's pending counts are written; mentee's vLLM is stopped)."""
        if self.router is not None:
            self.counts.share(force=True)
        self.router = self._guided = None
        if self._rounds is not None:
            self._rounds.stop()
        while self._owned:
            part = self._owned.pop()
            try:
                part.close()
            except Exception:
                logger.exception("closing %s failed", type(part).__name__)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _own(self, part: Any) -> Any:
        self._owned.append(part)
        return part

    # -- answering -------------------------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """The configured threshold, else the calibrated one, else :data:`UNCALIBRATED_THRESHOLD`."""
        if self.settings.confidence_threshold is not None:
            return self.settings.confidence_threshold
        if self.calibration is not None:
            return self.calibration.threshold
        return UNCALIBRATED_THRESHOLD

    def answer(self, messages: Sequence[ChatMessage] | str, switches: Switches | None = None) -> RoutedAnswer:
        """Route one user turn (the last message) through memory, student and teacher."""
        if self.router is None:
            msg = "mentee is not started: call start() or use it in a with-block"
            raise MenteeError(msg)
        self.follow_active_adapter()
        router = self.guided_router if switches is not None and switches.guided else self.router
        try:
            routed = router.answer(messages, switches)
        except MenteeError:
            self.counts.failed()
            raise
        self.counts.answered(routed.source, low_confidence=routed.low_confidence)
        return routed

    # -- adapters ----------------------------------------------------------------------------------------------

    @property
    def learner(self) -> Learner:
        """The learning rounds of this deployment (needs mentee's memory and a student it can load adapters into)."""
        if self._learner is None:
            from .student.client import Student

            if self.memory is None or not isinstance(self.student, Student) or self.adapters is None:
                msg = "learning needs the memory and a vLLM student (started by mentee or at student_url)"
                raise MenteeError(msg)
            self._learner = self._make_learner(self.memory)
        return self._learner

    @property
    def rounds(self) -> RoundRunner:
        """Rounds in the background: on demand (``submit``) and on the configured schedule."""
        if self._rounds is None:
            from .learning.runner import RoundRunner

            self.learner  # noqa: B018 - fails early, with the reason, where learning is impossible
            assert self.memory is not None
            self._rounds = RoundRunner(
                lambda: self.learner, self.settings, self.memory, guided=lambda: self.guided_learner
            )
        return self._rounds

    def follow_active_adapter(self, *, force: bool = False) -> None:
        """Serve the store's active version if another worker, the CLI or a round switched it (checked once a
        second), through the same path a round's switch takes (:func:`~.learning.adapters.serve`)."""
        if self.adapters is None or self.router is None:
            return
        now = time.monotonic()
        if not force and now - self._adapter_checked < 1.0:
            return
        self._adapter_checked = now
        active = self.adapters.active()
        name = active.served_name if active is not None else None
        if name == self.router.adapter:
            return
        from .learning.adapters import serve

        with self._switch_lock:
            serve(
                self.student,  # type: ignore[arg-type]
                self.adapters,
                active,
                keep_loaded=self.settings.adapters_keep_loaded,
                switch=self._switch,
            )

    def _routers(self) -> list[Router]:
        return [r for r in (self.router, self._guided) if r is not None]

    def _student_restarted(self) -> None:
        """A restarted vLLM has lost its LoRA adapters: the base model answers until the active one is loaded."""
        for router in self._routers():
            router.use_adapter(None)
        self.follow_active_adapter(force=True)

    def _calibrated(self, calibration: Calibration) -> None:
        self.calibration = calibration
        for router in self._routers():
            router.use_threshold(self.threshold)
        logger.info("re-calibrated for %s: threshold %.4f", calibration.adapter, self.threshold)

    def _switch(self, adapter: AdapterVersion | None) -> None:
        for router in self._routers():
            if adapter is None:
                router.use_adapter(None)
            else:
                router.use_adapter(adapter.served_name, beside=adapter.beside)

    # -- the guided run ----------------------------------------------------------------------------------------

    @property
    def guided_memory(self) -> Memory:
        """The guided run's own memory: a namespace beside the deployment's, so its questions never mix with
        the users' (cleared at the start of each run)."""
        if self.memory is None:
            msg = "the guided run needs the memory"
            raise MenteeError(msg)
        return self.memory.in_namespace(f"{self.settings.memory_namespace[:GUIDED_PREFIX_CHARS]}{GUIDED_SUFFIX}")

    @property
    def guided_router(self) -> Router:
        """Routes the guided run's questions as :attr:`router` routes the users', over :attr:`guided_memory`."""
        if self.router is None:
            msg = "mentee is not started: call start() or use it in a with-block"
            raise MenteeError(msg)
        if self._guided is None:
            guided = self._router(self.guided_memory)
            adapter, beside = self.router.serving
            guided.use_adapter(adapter, beside=beside)
            self._guided = guided
        return self._guided

    @property
    def guided_learner(self) -> Learner:
        """Rounds over the guided run's items only. Its adapter is served like any round's (active, beside the
        earlier ones), so only ``train_recipe`` "stack" keeps the users' adapters as they are, and only while the
        stack has room: otherwise :class:`MenteeError` (a consolidation would fold the users' items out)."""
        learner = self.learner
        if self.settings.train_recipe != "stack":
            msg = (
                f"the guided run needs train_recipe 'stack' (this deployment's is {self.settings.train_recipe!r}): "
                "its round would replace the adapter your memory's items were learned by"
            )
            raise MenteeError(msg)
        if learner.stack_plan()[1]:
            msg = (
                f"the adapter stack is full ({self.settings.train_stack_max}): the next round on your own memory "
                "consolidates it; run one before the guided run"
            )
            raise MenteeError(msg)
        if self._guided_learner is None:
            self._guided_learner = self._make_learner(self.guided_memory)
        return self._guided_learner

    def _make_learner(self, memory: Memory) -> Learner:
        """A learner over ``memory`` with this deployment's student, adapters store, teacher and switches."""
        from .learning.round import Learner

        assert self.adapters is not None
        return Learner(
            self.settings,
            student=self.student,  # type: ignore[arg-type]
            memory=memory,
            store=self.adapters,
            teacher=self.guarded_teacher,
            on_switch=self._switch,
            on_calibrated=self._calibrated,
        )

    def clear_guided(self) -> int:
        """Forget the guided run's items (its memory only); how many there were."""
        return self.guided_memory.clear()

    # -- state -----------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Answers by source, teacher calls avoided and their estimated cost, the teacher's ledger, the memory."""
        counts, workers = self.counts.deployment()
        answers, timeline = counts["answers"], counts["timeline"]
        low_confidence, failed = counts["low_confidence"], counts["failed"]
        total = sum(answers.values())
        avoided = answers["memory"] + answers["student"]
        teacher: dict[str, Any] | None = None
        cost_avoided = None
        guarded = self.guarded_teacher
        if guarded is not None:
            ledger = guarded.ledger.totals()
            answered = ledger["calls"] - ledger["errors"]
            cost_avoided = round(avoided * ledger["cost"] / answered, 6) if answered else 0.0
            teacher = {
                "name": guarded.name,
                **ledger,
                "today": guarded.usage_today(),
                "breaker_open": guarded.breaker_open,
                # What was kept from the teacher, by kind (None: no redaction configured).
                "redactions": guarded.redactor.snapshot() if guarded.redactor is not None else None,
            }
        elif self.teacher is not None:
            teacher = {"name": self.teacher.name}
        return {
            "answers": {**answers, "total": total, "low_confidence": low_confidence, "failed": failed},
            "shares": {source: round(count / total, 4) if total else 0.0 for source, count in answers.items()},
            "teacher_calls_avoided": avoided,
            "cost_avoided": cost_avoided,  # avoided answers at the mean cost of a teacher answer so far
            "teacher": teacher,
            "memory": self.memory.stats() if self.memory is not None else None,
            "threshold": self.threshold,
            "calibrated": self.calibration is not None and self.settings.confidence_threshold is None,
            "uptime_s": round(time.time() - self.started_at, 1),
            "timeline": timeline,  # answers by source per minute (epoch seconds of the minute), the last day
            "workers": workers,  # API processes whose counts these are (this one, others sharing the home, past ones)
            # What is this worker's own rather than the deployment's (docs/DESIGN.md, "State that lives in one
            # process"): the teacher's ledger and daily budget, and the cost avoided priced at this worker's ledger.
            "per_worker": ["teacher", "cost_avoided"],
        }

    def about(self) -> dict[str, Any]:
        """What a newcomer needs to start: the teacher connected (kind and name, never its address or keys), the
        student (its model's name, the adapter served), the confidence threshold, and example questions."""
        from .student.models import EMBEDDED_STUDENT_NAME, is_embedded_student
        from .teachers.examples import teacher_summary

        embedded = is_embedded_student(self.settings)
        model = f"{EMBEDDED_STUDENT_NAME} (embedded)" if embedded else self.settings.student_model.rstrip("/")
        return {
            "teacher": teacher_summary(self.teacher),
            "student": {
                "model": model.rsplit("/", 1)[-1],  # a folder's name, not where it lies on this machine
                "embedded": embedded,
                "adapter": self.router.adapter if self.router is not None else None,
            },
            "threshold": round(self.threshold, 6),
            "calibrated": self.settings.confidence_threshold is None and self.calibration is not None,
            "examples": [e.to_dict() for e in self.examples],
        }

    def calibration_state(self) -> dict[str, Any]:
        """The threshold in use, where it comes from, and the saved calibration's figures."""
        if self.settings.confidence_threshold is not None:
            origin = "configured"
        elif self.calibration is not None:
            origin = "calibrated"
        else:
            origin = "default (not calibrated: run `mentee calibrate FILE.jsonl`)"
        return {
            "threshold": self.threshold,
            "origin": origin,
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
        }

    @property
    def guarded_teacher(self) -> GuardedTeacher | None:
        """The teacher with its ledger and budget, when it is guarded (as the settings' teachers are)."""
        from .teachers.base import GuardedTeacher

        return self.teacher if isinstance(self.teacher, GuardedTeacher) else None
