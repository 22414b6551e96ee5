"""A learning round, end to end: the memory's new items -> a trainer process -> the gate -> the served adapter.

:class:`Learner` runs one round at a time for a deployment:

1. the round's data (:mod:`mentee.server.learning.dataset`): new items, replay, replay anchors; held-out check anchors;
2. the trainer in its own process (:mod:`mentee.server.learning.trainer`), its progress passed on as it comes;
3. the adapter moved into the store as the next version ``vN`` with its manifest (a crash before this point
   leaves the served adapter and the memory as they were);
4. the gate (:mod:`.gate`), through the running vLLM, with the student alone: the adapter is loaded
   under its own new name ``student-vN`` and asked the gate's questions;
5. a passed adapter becomes the active version (the router switches to it, the items it learned are marked in the
   memory, older loaded versions beyond ``adapters_keep_loaded`` are unloaded); a refused one is unloaded and
   kept on disk for inspection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import MenteeError
from ..core.files import write_json
from .adapters import MANIFEST, AdapterStore, AdapterVersion
from .dataset import (
    RoundData,
    build_round,
    examples_to_json,
    load_anchors,
    load_question_pairs,
    normalize_question,
    paraphrase_checks,
)
from .gate import GateReport, GateThresholds, run_gate, score
from .trainer import RESULT, LoraSettings, TrainingJob, read_progress

if TYPE_CHECKING:
    from ...memory.store import Memory
    from ..core.config import Settings
    from ..serving.calibration import Calibration
    from ..student.client import Generation, Student
    from ..teachers.base import Teacher

logger = logging.getLogger(__name__)

ROUND_ELSEWHERE = "a learning round is already running in another process of this deployment"

ProgressCallback = Callable[[dict[str, Any]], None]


class LearningError(MenteeError):
    """A round could not run (another is running, nothing to learn, the trainer failed)."""


@dataclass
class RoundOutcome:
    """What a round did."""

    state: str  # "passed", "refused", "failed", "skipped"
    adapter: str | None = None
    gate: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    calibration: dict[str, Any] | None = None  # the re-calibration for the new adapter


class Learner:
    """Learning rounds for one deployment; never two at once."""

    def __init__(
        self,
        settings: Settings,
        *,
        student: Student,
        memory: Memory,
        store: AdapterStore | None = None,
        teacher: Teacher | None = None,
        on_switch: Callable[[AdapterVersion | None], None] | None = None,
        on_calibrated: Callable[[Calibration], None] | None = None,
    ) -> None:
        self.settings = settings
        self.student = student
        self.memory = memory
        self.store = store or AdapterStore(settings.home / "adapters")
        self.teacher = teacher  # for the distillation set-ups that ask it more than the answer
        self.on_switch = on_switch
        self.on_calibrated = on_calibrated
        self._running = threading.Lock()
        self._base_anchor_accuracy: dict[tuple[str, ...], float | None] = {}  # the base model never changes
        self.trainer_process: subprocess.Popen[bytes] | None = None

    # -- settings ----------------------------------------------------------------------------------------------

    def lora(self) -> LoraSettings:
        s = self.settings
        return LoraSettings(
            rank=s.lora_rank,
            alpha=s.lora_alpha,
            dropout=s.lora_dropout,
            target_modules=tuple(s.lora_target_modules),
            epochs=s.train_epochs,
            learning_rate=s.train_learning_rate,
            batch_size=s.train_batch_size,
            seed=s.train_seed,
            precision=s.train_precision,
        )

    def thresholds(self) -> GateThresholds:
        s = self.settings
        return GateThresholds(
            min_new_recall=s.gate_min_new_recall,
            min_retention=s.gate_min_retention,
            max_anchor_drop=s.gate_max_anchor_drop,
            min_paraphrase_recall=s.gate_min_paraphrase_recall,
        )

    # -- a round -----------------------------------------------------------------------------------------------

    def _round_lock(self) -> Any:
        """The lock in the adapters store that keeps one round at a time across the processes sharing it."""
        from filelock import FileLock

        return FileLock(str(self.store.root / ".round.lock"))

    def running_elsewhere(self) -> bool:
        """Whether another process of this deployment (a worker, the trainer service) runs a round now."""
        from filelock import Timeout

        if self._running.locked():
            return False  # this process's own round holds the lock
        probe = self._round_lock()
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return True
        probe.release()
        return False

    def run_round(self, progress: ProgressCallback | None = None) -> RoundOutcome:
        """Run one round now; :class:`LearningError` if one is already running."""
        from filelock import Timeout

        if not self._running.acquire(blocking=False):
            msg = "a learning round is already running"
            raise LearningError(msg)
        # Workers and a trainer service share the adapters store: one round at a time across all of them.
        shared = self._round_lock()
        try:
            shared.acquire(timeout=0)
        except Timeout:
            self._running.release()
            raise LearningError(ROUND_ELSEWHERE) from None
        started = time.monotonic()
        report = progress or (lambda update: None)
        try:
            outcome = self._round(report)
        except Exception as e:  # the served adapter and the memory stay as they were
            logger.exception("the learning round failed")
            outcome = RoundOutcome(state="failed", error=str(e))
        finally:
            shared.release()
            self._running.release()
        outcome.seconds = round(time.monotonic() - started, 1)
        report({"phase": "done", "state": outcome.state})
        return outcome

    def _round(self, report: ProgressCallback) -> RoundOutcome:
        self.store.remove_partials()
        anchors = load_anchors(self.settings.home)
        if anchors is None or not anchors.split("check"):
            msg = "no anchor set: build one with `mentee anchors build QA_FILE` (the gate's forgetting check needs it)"
            raise LearningError(msg)
        data = build_round(
            self.memory,
            anchors,
            replay_per_new=self.settings.train_replay_per_new,
            anchors_per_new=self.settings.train_anchors_per_new,
            max_new=self.settings.train_max_new,
            seed=self.settings.train_seed,
        )
        if not data.new:
            return RoundOutcome(state="skipped", error="nothing new to learn", data=data.summary())
        report({"phase": "distilling", "setup": self.settings.distillation, "new": len(data.new)})
        data = self.distill(data)
        if not data.new:
            msg = "nothing to learn: the teacher disagreed with itself on every new item"
            return RoundOutcome(state="skipped", error=msg, data=data.summary())
        report({"phase": "training", "new": len(data.new), "examples": len(data.train)})
        job_dir = self.settings.home / "training" / time.strftime("round-%Y%m%d-%H%M%S")
        training = self._train(data, job_dir, report)
        with self.store.new_version() as (version, partial):
            for item in (job_dir / "adapter").iterdir():
                shutil.copy2(item, partial / item.name)
            manifest = {
                "version": version,
                "created_at": time.time(),
                "base_model": str(self.student.model_dir or self.settings.student_model),
                "base_model_sha256": _base_checksum(self.student.model_dir),
                "prompt_format": self.student.prompt_format.name,
                "data": data.summary(),
                "hyperparameters": self.lora().__dict__ | {"target_modules": list(self.lora().target_modules)},
                "training": training,
                "gate": None,
            }
            write_json(partial / MANIFEST, manifest)
        adapter = self.store.get(version)
        report({"phase": "gate", "adapter": version})
        gate = self._gate(adapter, data)
        adapter = self.store.update_manifest(version, gate=gate.to_dict())
        if not gate.passed:
            self.student.unload_adapter(adapter.served_name)
            return RoundOutcome("refused", version, gate.to_dict(), data.summary(), training)
        self.activate(version, reason="round passed its gate")
        self.memory.mark_learned([e.id for e in data.new], version)
        outcome = RoundOutcome("passed", version, gate.to_dict(), data.summary(), training)
        if self.settings.recalibrate_after_round:
            report({"phase": "calibrating", "adapter": version})
            outcome.calibration = self.recalibrate(adapter)
        return outcome

    def distill(self, data: RoundData) -> RoundData:
        """The round's data after the distillation set-up, with the held-out paraphrases the gate will ask."""
        from dataclasses import replace

        from .distill import distill

        s = self.settings
        pairs = load_question_pairs(Path(s.gate_paraphrase_file).expanduser()) if s.gate_paraphrase_file else []
        checks = paraphrase_checks(data.new, pairs)
        distilled = distill(
            data.new,
            self.teacher,
            s.distillation,
            samples=s.distill_samples,
            paraphrases=s.distill_paraphrases,
            exclude={normalize_question(check.question) for check in checks},
        )
        kept = {e.id for e in distilled.new}
        return replace(
            data,
            new=distilled.new,
            extra=distilled.extra,
            paraphrase_checks=tuple(c for c in checks if c.id.partition(":")[0] in kept),
            distillation=distilled.summary(),
        )

    def recalibrate(self, adapter: AdapterVersion) -> dict[str, Any] | None:
        """Measure the confidence threshold again for a new adapter, on the QA file of the last calibration (a new
        adapter changes what the confidence means); ``None`` if mentee was never calibrated here."""
        from ..core.qa_files import read_qa_file
        from ..serving.calibration import choose_threshold, load_calibration, measure, save_calibration

        previous = load_calibration(self.settings.home)
        if previous is None or not previous.source or not Path(previous.source).is_file():
            logger.info("not re-calibrating: no earlier calibration with its QA file")
            return None

        def ask(question: str) -> tuple[str, float]:
            generation = self._ask_alone(question, adapter)
            return generation.text, generation.confidence

        results = measure(ask, read_qa_file(Path(previous.source)), limit=previous.questions)
        calibration = choose_threshold(
            [(r["confidence"], r["correct"]) for r in results],
            target_precision=previous.target_precision,
            adapter=adapter.version,
            source=previous.source,
        )
        save_calibration(self.settings.home, calibration)
        if self.on_calibrated is not None:
            self.on_calibrated(calibration)
        return calibration.to_dict()

    def _train(self, data: RoundData, job_dir: Path, report: ProgressCallback) -> dict[str, Any]:
        base = self.student.model_dir
        if base is None:
            msg = "the student's model folder is unknown (a remote vLLM): set student_model to its local folder"
            raise LearningError(msg)
        TrainingJob(str(base), self.student.prompt_format.name, examples_to_json(data.train), self.lora()).write(
            job_dir
        )
        from ..core.processes import die_with_parent

        with (job_dir / "train.log").open("wb") as log:
            self.trainer_process = subprocess.Popen(
                self.trainer_command(job_dir),
                env=trainer_environment(job_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # a killed server leaves no trainer training on for nothing
            )
            last = None
            while self.trainer_process.poll() is None:
                time.sleep(0.5)
                now = read_progress(job_dir)
                if now is not None and now != last:
                    report({"phase": "training", **now})
                    last = now
        code, self.trainer_process = self.trainer_process.returncode, None
        if code != 0 or not (job_dir / RESULT).is_file():
            tail = (job_dir / "train.log").read_text(errors="replace")[-1500:]
            msg = f"the trainer failed (exit {code}); its log {job_dir / 'train.log'} ends:\n{tail}"
            raise LearningError(msg)
        return dict(json.loads((job_dir / RESULT).read_text()))

    def trainer_command(self, job_dir: Path) -> list[str]:
        """The trainer's command line: one process, or ``train_processes`` data-parallel ones through Hugging Face
        accelerate (torch.distributed underneath: NCCL on GPUs, gloo on CPUs)."""
        trainer = ["-m", "mentee.server.learning.trainer", str(job_dir)]
        s = self.settings
        if s.train_processes == 1 and not s.train_launch_args:
            return [sys.executable, *trainer]
        from ..core.processes import free_port

        # accelerate's --multi_gpu is its torch.distributed launcher; without a GPU the processes train on CPU
        # with gloo (the trainer sets use_cpu), with GPUs one process per device.
        launch = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes", str(s.train_processes),
            "--mixed_precision", "no",  # the trainer picks bf16 itself on GPUs
            "--dynamo_backend", "no",
        ]  # fmt: skip
        if "--main_process_port" not in s.train_launch_args:
            launch += ["--main_process_port", str(free_port("127.0.0.1"))]
        if "--num_machines" not in s.train_launch_args:
            launch += ["--num_machines", "1"]
        return [*launch, *s.train_launch_args, *trainer]

    def _gate(self, adapter: AdapterVersion, data: RoundData) -> GateReport:
        self.student.load_adapter(adapter.served_name, adapter.path)
        new_ids = {e.id for e in data.new}

        def ask(question: str) -> str:
            return self._ask_alone(question, adapter, also_learned=new_ids).text

        anchors_key = tuple(sorted(e.id for e in data.check_anchors))
        if anchors_key not in self._base_anchor_accuracy:
            self._base_anchor_accuracy[anchors_key] = score(
                lambda q: self.student.generate(q).text, data.check_anchors, concurrency=self.settings.gate_concurrency
            )[0]
        return run_gate(
            ask,
            new=data.new,
            replay=data.replay,
            check_anchors=data.check_anchors,
            paraphrases=data.paraphrase_checks,
            base_accuracy=self._base_anchor_accuracy[anchors_key],
            thresholds=self.thresholds(),
            concurrency=self.settings.gate_concurrency,
        )

    def _ask_alone(self, question: str, adapter: AdapterVersion, *, also_learned: Container[str] = ()) -> Generation:
        """The student alone (no memory answer, no teacher), routed between ``adapter`` and the base model as it
        is served (``adapter_scope``)."""
        from ..serving.router import adapter_for

        chosen = adapter_for(
            question,
            adapter.served_name,
            self.memory,
            scope=self.settings.adapter_scope,
            max_distance=self.settings.adapter_scope_distance,
            also_learned=also_learned,
        )
        return self.student.generate(question, adapter=chosen)

    # -- switching ---------------------------------------------------------------------------------------------

    def activate(self, version: str | None, *, reason: str = "") -> AdapterVersion | None:
        """Serve ``version`` (a passed one; ``None``: the base model): loaded into vLLM if needed, made active
        for every worker, older loaded versions beyond ``adapters_keep_loaded`` unloaded."""
        adapter = self.store.get(version) if version is not None else None
        if adapter is not None and adapter.served_name not in self.student.adapters():
            self.student.load_adapter(adapter.served_name, adapter.path)
        self.store.activate(version, reason=reason)
        if self.on_switch is not None:
            self.on_switch(adapter)
        self._unload_old(keep=adapter)
        return adapter

    def _unload_old(self, keep: AdapterVersion | None) -> None:
        loaded = sorted(
            (name for name in self.student.adapters() if name.startswith("student-v")),
            key=lambda name: int(name.removeprefix("student-v")),
        )
        others = [name for name in loaded if keep is None or name != keep.served_name]
        for name in others[: max(0, len(others) - (self.settings.adapters_keep_loaded - 1))]:
            self.student.unload_adapter(name)


def trainer_environment(job_dir: Path) -> dict[str, str]:
    """The trainer's environment: its temp files (torch.distributed's rendezvous among them) in the job's folder."""
    temp = job_dir / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(temp)}


def _base_checksum(model_dir: Path | None) -> str | None:
    """The base model's checksum: the one in mentee's model manifest, else a sha256 of its weight files."""
    if model_dir is None:
        return None
    manifest = model_dir / "mentee-model.json"
    if manifest.is_file():
        files = json.loads(manifest.read_text()).get("files", {})
        weights = sorted((name, entry) for name, entry in files.items() if name.endswith(".safetensors"))
        recorded = [f"{name}:{entry['sha256']}" for name, entry in weights]
        if recorded:
            return hashlib.sha256("\n".join(recorded).encode()).hexdigest()
    digest = hashlib.sha256()
    for weights in sorted(model_dir.glob("*.safetensors")):
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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

    def __init__(self, learner: Callable[[], Learner], settings: Settings, memory: Memory) -> None:
        self._learner = learner
        self.settings = settings
        self.memory = memory
        self.jobs: dict[str, RoundJob] = {}
        self._lock = threading.Lock()
        self._current: RoundJob | None = None
        self._stop = threading.Event()
        self._last_round = time.monotonic()
        self._scheduler: threading.Thread | None = None

    def submit(self, reason: str = "on demand") -> RoundJob:
        """Queue a round; :class:`LearningError` if one is queued or running."""
        import uuid

        with self._lock:
            if self._current is not None:
                msg = f"a learning round is already {self._current.state} ({self._current.id})"
                raise LearningError(msg)
            if self._learner().running_elsewhere():
                raise LearningError(ROUND_ELSEWHERE)
            job = RoundJob(id=f"round-{uuid.uuid4().hex[:12]}", reason=reason)
            self.jobs[job.id] = job
            self._current = job
        threading.Thread(target=self._run, args=(job,), name=f"mentee-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> RoundJob | None:
        return self.jobs.get(job_id)

    @property
    def busy(self) -> bool:
        return self._current is not None

    def _run(self, job: RoundJob) -> None:
        job.state = "running"

        def progress(update: dict[str, Any]) -> None:
            job.progress = {**update, "at": time.time()}

        try:
            outcome = self._learner().run_round(progress=progress)
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
