"""A learning round, end to end: the memory's new items -> a trainer process -> the gate -> the served adapter.

:class:`Learner` runs one round at a time for a deployment:

1. the round's data (:mod:`mentee.server.learning.dataset`): new items, replay, replay anchors; held-out check anchors
   and a sample of everything taught before;
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
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import MenteeError
from ..core.files import write_json
from ..core.processes import die_with_parent
from ..core.qa_files import read_qa_file
from ..student.models import embedded_known_questions, is_embedded_student
from ..student.prompting import PromptFormat, adapter_prompt_format
from .adapters import MANIFEST, AdapterStore, AdapterVersion, serve, served_as
from .dataset import (
    AnchorSet,
    Example,
    RoundData,
    build_anchors,
    build_round,
    examples_to_json,
    load_anchors,
    load_question_pairs,
    normalize_question,
    paraphrase_checks,
    save_anchors,
)
from .gate import GateReport, GateThresholds, ask_each, run_gate, score
from .launch import base_checksum, trainer_command, trainer_environment
from .trainer import PRESCREEN, RESULT, LoraSettings, TrainingJob, read_progress

if TYPE_CHECKING:
    from ...memory.store import Memory
    from ..core.config import Settings
    from ..serving.calibration import Calibration
    from ..student.client import Generation, Student
    from ..teachers.base import Teacher

logger = logging.getLogger(__name__)

PRESCREEN_ANSWERS = 4  # accepted answers of a gate question pre-screened at most (QA files list many aliases)
BASE_ANCHORS = "base-anchors.json"  # the base model's answers to held-out anchors, by model, prompt and decoding
GATE_ANSWERS = "gate-answers.json"  # in a version's folder: its answers to gate questions, by base, prompt, decoding
ROUND_ELSEWHERE = "a learning round is already running in another process of this deployment"
NO_ANCHOR_SOURCE = (
    "no anchor set, and nothing to build one from: this student is not the embedded one, so set anchors_qa_file "
    "(MENTEE_ANCHORS_QA_FILE) to a QA file it answers part of, or run `mentee anchors build QA_FILE` (the gate's "
    "forgetting check needs the base student's own right answers)"
)

ProgressCallback = Callable[[dict[str, Any]], None]


class LearningError(MenteeError):
    """A round could not run (another is running, nothing to learn, the trainer failed)."""

    def __init__(self, message: str, *, round_id: str | None = None) -> None:
        super().__init__(message)
        self.round_id = round_id  # the round already running, when it runs in this process


class NoAnchorSourceError(LearningError):
    """The home has no anchor set and nothing says what to build one from."""


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
        self._base_answers_kept: dict[str, Any] = {}  # BASE_ANCHORS' content: the base model never changes
        self.trainer_process: subprocess.Popen[bytes] | None = None

    # -- settings ----------------------------------------------------------------------------------------------

    def lora(self) -> LoraSettings:
        return LoraSettings.from_settings(self.settings)

    def thresholds(self) -> GateThresholds:
        return GateThresholds.from_settings(self.settings)

    def adapter_format(self) -> PromptFormat:
        """The prompt format a new adapter is trained, gated and served in (``train_few_shot``)."""
        return adapter_prompt_format(self.student.prompt_format, few_shot=self.settings.train_few_shot)

    # -- the anchor set ---------------------------------------------------------------------------------------

    def anchors_source(self) -> Path | None:
        """The QA file a missing anchor set is built from: ``anchors_qa_file``, else the embedded student's packaged
        known questions; ``None`` for another student without one."""
        if self.settings.anchors_qa_file:
            return Path(self.settings.anchors_qa_file)
        return embedded_known_questions() if is_embedded_student(self.settings) else None

    def ensure_anchors(self, progress: ProgressCallback | None = None) -> AnchorSet:
        """The home's anchor set; built first when there is none (the base student asked the questions of
        :meth:`anchors_source`, its right answers kept) and saved. :class:`LearningError` when there is nothing to
        build it from, or when the student gets too few right (``anchors_min_check``): then nothing is saved."""
        from filelock import FileLock

        anchors = load_anchors(self.settings.home)
        if anchors is not None and anchors.split("check"):
            return anchors
        # API workers and a trainer starting together: one builds, the others wait for it and read its set
        self.settings.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.settings.home / ".anchors.lock")):
            anchors = load_anchors(self.settings.home)
            if anchors is not None and anchors.split("check"):
                return anchors
            return self._build_anchors(progress or (lambda update: None))

    def _build_anchors(self, report: ProgressCallback) -> AnchorSet:
        source = self.anchors_source()
        if source is None:
            raise NoAnchorSourceError(NO_ANCHOR_SOURCE)
        rows = read_qa_file(source)[: self.settings.anchors_limit]
        logger.info("no anchor set: asking the base student %d questions of %s", len(rows), source)
        report({"phase": "anchors", "asking": len(rows), "source": str(source)})
        questions = list(dict.fromkeys(row["question"] for row in rows))
        answers = self._ask_base(questions)
        anchors = build_anchors(answers.__getitem__, rows, source=str(source), limit=len(rows))
        check = len(anchors.split("check"))
        if check < self.settings.anchors_min_check:
            msg = (
                f"too few anchors: the base student answered {len(anchors.anchors)} of {anchors.asked} questions of "
                f"{source} right, {check} held out for the gate's forgetting check (anchors_min_check "
                f"{self.settings.anchors_min_check}); set anchors_qa_file to a QA file this student knows more of"
            )
            raise LearningError(msg)
        path = save_anchors(self.settings.home, anchors)
        logger.info("anchor set built: %d anchors (%d held out) saved to %s", len(anchors.anchors), check, path)
        report({"phase": "anchors", "anchors": len(anchors.anchors), "check": check, "asked": anchors.asked})
        return anchors

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
        anchors = self.ensure_anchors(report)
        serves_with, consolidating = self.stack_plan()
        data = build_round(
            self.memory,
            anchors,
            # a stack round leaves the earlier items to the adapters beside it; a consolidation takes them all in
            replay_per_new=0.0 if serves_with is not None and not consolidating else self.settings.train_replay_per_new,
            replay_all=consolidating,
            anchors_per_new=self.settings.train_anchors_per_new,
            max_new=self.settings.train_max_new,
            retention_sample=self.settings.gate_retention_sample,
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
        start = self.start_from()
        beside = {v: served_as(v) for v in serves_with or ()}
        training = self._train(data, job_dir, report, checks=self._candidate_checks(data, beside), start=start)
        with self.store.new_version() as (version, partial):
            for item in (job_dir / "adapter").iterdir():
                shutil.copy2(item, partial / item.name)
            manifest = {
                "version": version,
                "created_at": time.time(),
                "base_model": str(self.student.model_dir or self.settings.student_model),
                "base_model_sha256": base_checksum(self.student.model_dir),
                "prompt_format": self.adapter_format().name,
                "data": data.summary(),
                "hyperparameters": self.lora().__dict__ | {"target_modules": list(self.lora().target_modules)},
                "training": training,
                "recipe": {
                    "name": self.settings.train_recipe,
                    "started_from": start.version if start else None,
                    "consolidated": consolidating,
                },
                "serves_with": list(serves_with or ()),
                "gate": None,
            }
            write_json(partial / MANIFEST, manifest)
        adapter = self.store.get(version)
        report({"phase": "gate", "adapter": version})
        gate = self._gate(adapter, data, prescreened=read_prescreen(job_dir))
        adapter = self.store.update_manifest(version, gate=gate.to_dict())
        if not gate.passed:
            self.student.unload_adapter(adapter.served_name)
            return RoundOutcome("refused", version, gate.to_dict(), data.summary(), training)
        self.activate(version, reason="round passed its gate")
        # what it answers from now on: its new items, and in a consolidation every item folded into it
        self.memory.mark_learned([e.id for e in (*data.new, *(data.replay if consolidating else ()))], version)
        outcome = RoundOutcome("passed", version, gate.to_dict(), data.summary(), training)
        if self.settings.recalibrate_after_round:
            report({"phase": "calibrating", "adapter": version})
            outcome.calibration = self.recalibrate(adapter)
        return outcome

    def distill(self, data: RoundData) -> RoundData:
        """The round's data after the distillation set-up, with the held-out paraphrases the gate will ask."""
        from .distill import distill

        s = self.settings
        pairs = load_question_pairs(Path(s.gate_paraphrase_file).expanduser()) if s.gate_paraphrase_file else []
        checks = paraphrase_checks(data.new, pairs)
        retained_checks = paraphrase_checks(data.retention, pairs)
        distilled = distill(
            data.new,
            self.teacher,
            s.distillation,
            samples=s.distill_samples,
            paraphrases=s.distill_paraphrases,
            exclude={normalize_question(check.question) for check in (*checks, *retained_checks)},
        )
        kept = {e.id for e in distilled.new}
        return replace(
            data,
            new=distilled.new,
            extra=distilled.extra,
            paraphrase_checks=tuple(c for c in checks if c.id.partition(":")[0] in kept),
            retention_paraphrases=retained_checks,
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

    def _candidate_checks(self, data: RoundData, beside: dict[str, str]) -> list[dict[str, Any]]:
        """The gate's questions the candidate adapter will answer (routed as served), with their accepted answers,
        for the trainer's teacher-forced pre-screen; none when it is off or decoding is not greedy."""
        if self.settings.gate_prescreen_margin <= 0 or self.settings.temperature > 0:
            return []
        new_ids = {e.id for e in data.new}
        accepted: dict[str, dict[str, None]] = {}
        for e in (
            *data.new,
            *data.retention,
            *data.check_anchors,
            *data.paraphrase_checks,
            *data.retention_paraphrases,
        ):
            if e.question not in accepted:
                if self._route(e.question, "candidate", also_learned=new_ids, beside=beside) != "candidate":
                    continue  # the base model (from base-anchors.json when it is an anchor) or one beside answers it
                accepted[e.question] = {}
            accepted[e.question].update(dict.fromkeys(e.accepted_answers()))
        return [{"question": q, "answers": list(answers)[:PRESCREEN_ANSWERS]} for q, answers in accepted.items()]

    def _train(
        self,
        data: RoundData,
        job_dir: Path,
        report: ProgressCallback,
        *,
        checks: list[dict[str, Any]] | None = None,
        start: AdapterVersion | None = None,
    ) -> dict[str, Any]:
        base = self.student.model_dir
        if base is None:
            msg = "the student's model folder is unknown (a remote vLLM): set student_model to its local folder"
            raise LearningError(msg)
        job = TrainingJob(str(base), self.adapter_format().name, examples_to_json(data.train), self.lora())
        if start is not None:
            job = replace(job, start_from=str(start.path))
        if checks:
            job = replace(job, checks=checks, check_max_tokens=self.settings.max_tokens)
        job.write(job_dir)
        with (job_dir / "train.log").open("wb") as log:
            self.trainer_process = subprocess.Popen(
                trainer_command(self.settings, job_dir),
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

    def stack_plan(self) -> tuple[list[str] | None, bool]:
        """With ``train_recipe`` "stack": the versions the next adapter is served beside (the active one and those
        beside it), and whether this round consolidates instead — when that stack already holds
        ``train_stack_max`` adapters, the round trains one adapter on the new items and everything learned, served
        alone. ``(None, False)`` for the other recipes."""
        if self.settings.train_recipe != "stack":
            return None, False
        active = self.store.active()
        stack = [*active.serves_with, active.version] if active is not None else []
        if len(stack) >= self.settings.train_stack_max:
            return [], True
        return stack, False

    def start_from(self) -> AdapterVersion | None:
        """The adapter the next round continues (``train_recipe`` "warm"): the active one, when it was trained on this
        base model, in this prompt format and with the adapter shape of the ``lora_*`` settings; else ``None``, a
        fresh adapter."""
        if self.settings.train_recipe != "warm":
            return None
        active = self.store.active()
        if active is None:
            return None
        lora, manifest = self.lora(), active.manifest
        shape = manifest.get("hyperparameters") or {}
        same = (
            shape.get("rank") == lora.rank
            and shape.get("alpha") == lora.alpha
            and sorted(shape.get("target_modules") or []) == sorted(lora.target_modules)
            and manifest.get("prompt_format") == self.adapter_format().name
            and manifest.get("base_model_sha256") == base_checksum(self.student.model_dir)
        )
        if not same:
            logger.warning("train_recipe warm: the active adapter %s differs in shape or base; a fresh one", active)
            return None
        return active

    def _gate(
        self, adapter: AdapterVersion, data: RoundData, *, prescreened: dict[str, Any] | None = None
    ) -> GateReport:
        self.student.load_adapter(adapter.served_name, adapter.path, adapter.prompt_format)
        new_ids = {e.id for e in data.new}
        base_answers = self._base_answers(data.check_anchors)
        trusted: dict[str, str] = {}
        beside = adapter.beside
        # The adapters beside never change: what one answered a gate before (greedy) it answers again, so a question
        # still routed to it is taken from its folder; what any adapter is asked anew is kept there for later gates.
        kept = {served_as(v): self._gate_answers(self.store.get(v)) for v in adapter.serves_with}
        asked: dict[str, dict[str, str]] = {name: {} for name in (*kept, adapter.served_name)}
        reused: set[str] = set()

        def ask(question: str) -> str:
            chosen = self._route(question, adapter.served_name, also_learned=new_ids, beside=beside)
            if chosen is None and question in base_answers:
                return base_answers[question]  # routed to the base model, which answered it before (greedy)
            if chosen in kept and question in kept[chosen]:
                reused.add(question)
                return kept[chosen][question]
            if chosen == adapter.served_name and question in trusted:
                text = trusted[question]  # the pre-screen's answer, checked against vLLM on a sample below
            else:
                text = self.student.generate(question, adapter=chosen).text
            if chosen in asked:
                asked[chosen][question] = text
            return text

        screen: dict[str, Any] = {}
        if prescreened:
            trusted, screen = self._trust_prescreen(prescreened["checks"], ask)
            screen["trainer_s"] = prescreened.get("seconds")
        report = run_gate(
            ask,
            new=data.new,
            retained=data.retention,
            check_anchors=data.check_anchors,
            paraphrases=data.paraphrase_checks,
            retained_paraphrases=data.retention_paraphrases,
            base_accuracy=score(base_answers.__getitem__, data.check_anchors)[0],
            thresholds=self.thresholds(),
            concurrency=self.settings.gate_concurrency,
        )
        for name, version in ((served_as(v), v) for v in adapter.serves_with):
            self._keep_gate_answers(self.store.get(version), asked[name])
        if report.passed:  # served from now on, beside the next rounds' adapters
            self._keep_gate_answers(adapter, asked[adapter.served_name])
        return replace(report, prescreen=screen, answers_kept=len(reused))

    def _trust_prescreen(
        self, prescreened: dict[str, dict[str, Any]], ask: Callable[[str], str]
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The pre-screened answers the gate may take without asking vLLM, and what the check of them found. A
        sample (``gate_prescreen_verify``, chosen by ``train_seed``) is asked through vLLM: one answered otherwise
        and none is trusted, every question is asked."""
        import random

        margin = self.settings.gate_prescreen_margin
        passed = {
            q: str(r["answer"])
            for q, r in prescreened.items()
            if r.get("answer") is not None and float(r.get("margin") or 0.0) >= margin
        }
        sample = sorted(passed)
        random.Random(self.settings.train_seed).shuffle(sample)
        sample = sample[: self.settings.gate_prescreen_verify]
        said = dict(zip(sample, ask_each(ask, sample, concurrency=self.settings.gate_concurrency), strict=True))
        disagreed = [
            {"question": q, "prescreen": passed[q], "said": said[q]}
            for q in sample
            if " ".join(said[q].split()) != passed[q]
        ]
        screen = {
            "checked": len(prescreened),
            "margin": margin,
            "passed": len(passed),
            "verified": len(sample),
            "disagreed": disagreed[:10],
            "trusted": 0 if disagreed else len(passed),
        }
        if disagreed:
            logger.warning(
                "the pre-screen disagreed with vLLM on %d of %d: asking every question", len(disagreed), len(sample)
            )
            return {}, screen
        return passed | said, screen

    def _gate_answers_key(self, adapter: AdapterVersion) -> str | None:
        """What an adapter's kept answers hold for: its base model (by checksum), prompt format and decoding; ``None``
        where they cannot be kept (a remote student may change behind mentee; sampling says something else again)."""
        checksum = base_checksum(self.student.model_dir)
        if checksum is None or self.settings.temperature > 0:
            return None
        asked_as = [checksum, adapter.prompt_format, self.settings.temperature, self.settings.max_tokens]
        return hashlib.sha256(json.dumps(asked_as).encode()).hexdigest()

    def _gate_answers(self, adapter: AdapterVersion) -> dict[str, str]:
        """The answers ``adapter`` gave earlier gates (``GATE_ANSWERS`` in its folder), for questions routed to it."""
        key = self._gate_answers_key(adapter)
        try:
            kept = json.loads((adapter.path / GATE_ANSWERS).read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: asked again
        answers = kept.get(key) if isinstance(kept, dict) and key is not None else None
        return {str(q): str(a) for q, a in answers.items()} if isinstance(answers, dict) else {}

    def _keep_gate_answers(self, adapter: AdapterVersion, answers: dict[str, str]) -> None:
        key = self._gate_answers_key(adapter)
        if key is None or not answers:
            return
        write_json(adapter.path / GATE_ANSWERS, {key: self._gate_answers(adapter) | answers})

    def _ask_base(self, questions: list[str]) -> dict[str, str]:
        """The base model's answer to each question (no adapter), ``gate_concurrency`` in flight."""
        said = ask_each(lambda q: self.student.generate(q).text, questions, concurrency=self.settings.gate_concurrency)
        return dict(zip(questions, said, strict=True))

    def _base_answers(self, anchors: list[Example]) -> dict[str, str]:
        """The base model's answers to the held-out anchors, asked once per base model, prompt and decoding and kept
        in the home (``base-anchors.json``): a gate neither asks the base model the same questions again nor asks
        the candidate those its routing sends to the base model (greedy decoding says the same again)."""
        checksum = base_checksum(self.student.model_dir)
        asked_as = [checksum, self.settings.student_model, self.student.prompt_format.name]
        asked_as += [self.settings.temperature, self.settings.max_tokens]
        key = hashlib.sha256(json.dumps(asked_as).encode()).hexdigest()
        path = self.settings.home / BASE_ANCHORS
        kept = self._base_answers_kept
        if checksum is not None and not kept:  # a remote student may change behind mentee: kept in-process only
            try:
                kept = json.loads(path.read_text())
            except (OSError, ValueError):
                kept = {}  # none yet, or unreadable: asked again
            kept = kept if isinstance(kept, dict) else {}
        answers = kept.get(key) if isinstance(kept.get(key), dict) else {}
        missing = list(dict.fromkeys(e.question for e in anchors if e.question not in answers))
        if missing:
            answers = answers | self._ask_base(missing)
            kept = {**kept, key: answers}
            if checksum is not None:
                write_json(path, kept)
        self._base_answers_kept = kept
        return {e.question: answers[e.question] for e in anchors}

    def _route(
        self,
        question: str,
        served_name: str,
        *,
        also_learned: Container[str] = (),
        beside: Mapping[str, str] | None = None,
    ) -> str | None:
        """The served name that answers ``question`` with the adapter served as ``served_name`` active and ``beside``
        it (``None``: the base model), as it is served (``adapter_scope``)."""
        from ..serving.adapter_scope import adapter_for

        return adapter_for(
            question,
            served_name,
            self.memory,
            scope=self.settings.adapter_scope,
            max_distance=self.settings.adapter_scope_distance,
            also_learned=also_learned,
            beside=beside,
        )

    def _ask_alone(self, question: str, adapter: AdapterVersion, *, also_learned: Container[str] = ()) -> Generation:
        """The student alone (no memory answer, no teacher), routed between ``adapter`` and the base model."""
        chosen = self._route(question, adapter.served_name, also_learned=also_learned, beside=adapter.beside)
        return self.student.generate(question, adapter=chosen)

    # -- switching ---------------------------------------------------------------------------------------------

    def activate(self, version: str | None, *, reason: str = "") -> AdapterVersion | None:
        """Serve ``version`` (a passed one; ``None``: the base model), through the one path every switch takes
        (:func:`.adapters.serve`): loaded into vLLM, made active for every worker, older loaded versions beyond
        ``adapters_keep_loaded`` unloaded."""
        adapter = self.store.servable(version)
        serve(
            self.student,
            self.store,
            adapter,
            keep_loaded=self.settings.adapters_keep_loaded,
            switch=self.on_switch or (lambda _: None),
            reason=reason,
        )
        return adapter


def read_prescreen(job_dir: Path) -> dict[str, Any]:
    """The trainer's pre-screen of the gate's questions (``PRESCREEN``: "checks" by question, and the "seconds" it
    took); empty when it made none."""
    try:
        screen = json.loads((job_dir / PRESCREEN).read_text())
    except (OSError, ValueError):
        return {}
    return screen if isinstance(screen, dict) and isinstance(screen.get("checks"), dict) else {}
