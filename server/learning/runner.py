"""Rounds in the background: a job per round asked for (API, CLI, schedule), one at a time per process, and the
schedule that starts one after ``learn_after_items`` new items or every ``learn_every_minutes``.

Jobs live in the process that runs them (``GET /v1/mentee/train/{id}`` must reach that worker); the round lock in
the adapters store keeps one round at a time across all the processes sharing a home.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .round import ROUND_ELSEWHERE, LearningError, RoundOutcome

if TYPE_CHECKING:
    from ...memory.store import Memory
    from ..core.config import Settings
    from .round import Learner

logger = logging.getLogger(__name__)


@dataclass
class RoundJob:
    """A round asked for through the API or the schedule, and what became of it."""

    id: str
    state: str = "queued"  # queued, running, passed, refused, failed, skipped
    reason: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    outcome: RoundOutcome | None = None
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "id": self.id,
            "state": self.state,
            "reason": self.reason,
            "progress": self.progress,
            "adapter": outcome.adapter if outcome else None,
            "gate": outcome.gate if outcome else None,
            "data": outcome.data if outcome else None,
            "training": outcome.training if outcome else None,
            "error": outcome.error if outcome else None,
            "calibration": outcome.calibration if outcome else None,
            "seconds": outcome.seconds if outcome else None,
            "created_at": self.created_at,
        }


class RoundRunner:
    """Runs rounds in a background thread, one at a time, on demand or on a schedule (after ``learn_after_items``
    new remembered items, or every ``learn_every_minutes``)."""

    def __init__(
        self,
        learner: Callable[[], Learner],
        settings: Settings,
        memory: Memory,
        *,
        guided: Callable[[], Learner] | None = None,
    ) -> None:
        """``guided``: the learner of the guided run's rounds (over its own memory), for ``submit(guided=True)``."""
        self._learner = learner
        self._guided = guided
        self.settings = settings
        self.memory = memory
        self.jobs: dict[str, RoundJob] = {}
        self._lock = threading.Lock()
        self._current: RoundJob | None = None
        self._stop = threading.Event()
        self._last_round = time.monotonic()
        self._scheduler: threading.Thread | None = None

    def submit(self, reason: str = "on demand", *, guided: bool = False) -> RoundJob:
        """Queue a round (``guided``: over the guided run's memory); :class:`LearningError` if one is queued or
        running."""
        import uuid

        if guided and self._guided is None:
            msg = "this deployment has no guided run"
            raise LearningError(msg)
        with self._lock:
            if self._current is not None:
                msg = f"a learning round is already {self._current.state} ({self._current.id})"
                raise LearningError(msg, round_id=self._current.id)
            learner = self._guided() if guided and self._guided is not None else self._learner()
            if learner.running_elsewhere():
                raise LearningError(ROUND_ELSEWHERE)
            job = RoundJob(id=f"round-{uuid.uuid4().hex[:12]}", reason=reason)
            self.jobs[job.id] = job
            self._current = job
        threading.Thread(target=self._run, args=(job, learner), name=f"mentee-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> RoundJob | None:
        return self.jobs.get(job_id)

    @property
    def busy(self) -> bool:
        return self._current is not None

    def _run(self, job: RoundJob, learner: Learner) -> None:
        job.state = "running"

        def progress(update: dict[str, Any]) -> None:
            job.progress = {**update, "at": time.time()}

        try:
            outcome = learner.run_round(progress=progress)
        except Exception as e:
            outcome = RoundOutcome(state="failed", error=str(e))
        job.outcome = outcome
        job.state = outcome.state
        logger.info(
            "learning round %s (%s): %s, adapter %s%s",
            job.id,
            job.reason,
            outcome.state,
            outcome.adapter,
            f": {outcome.error}" if outcome.error else "",
        )
        with self._lock:
            self._current = None
            self._last_round = time.monotonic()

    # -- the schedule ------------------------------------------------------------------------------------------

    def start_schedule(self) -> None:
        """Check every few seconds whether a round is due (no-op when both triggers are off)."""
        if not (self.settings.learn_after_items or self.settings.learn_every_minutes) or self._scheduler:
            return
        self._scheduler = threading.Thread(target=self._schedule, name="mentee-learning-schedule", daemon=True)
        self._scheduler.start()

    def stop(self) -> None:
        """Stop the schedule, and a running trainer process (its round fails; nothing served changes)."""
        self._stop.set()
        if self._current is not None and (process := self._learner().trainer_process) is not None:
            process.terminate()

    def due(self) -> str | None:
        """Why a round is due now, or ``None``."""
        if self.busy or self._learner().running_elsewhere():
            return None
        after = self.settings.learn_after_items
        if after:
            pending = self.memory.stats()["not_learned"]
            if pending >= after:
                return f"{pending} new items (learn_after_items = {after})"
        every = self.settings.learn_every_minutes
        if every and time.monotonic() - self._last_round >= every * 60:
            return f"{every} minutes since the last round (learn_every_minutes)"
        return None

    def _schedule(self) -> None:
        while not self._stop.wait(5.0):
            try:
                reason = self.due()
                if reason is not None:
                    logger.info("starting a learning round: %s", reason)
                    self.submit(reason)
            except LearningError:
                pass
            except Exception:
                logger.exception("the learning schedule failed to check; trying again")
