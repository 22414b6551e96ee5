"""The parts of a learning round that need no model: the adapters store, the round's data, the gate."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.core.errors import InvalidRequestError
from mentee.server.core.versions import version_number, version_order
from mentee.server.learning.adapters import MANIFEST, AdapterError, AdapterStore
from mentee.server.learning.dataset import (
    AnchorSet,
    Example,
    build_anchors,
    build_round,
    load_anchors,
    retention_checks,
    save_anchors,
    training_pair,
)
from mentee.server.learning.gate import GateThresholds, run_gate
from mentee.server.student.prompting import QAPromptFormat


def write_version(store: AdapterStore, verdict: str | None = "passed", prompt_format: str | None = None) -> str:
    with store.new_version() as (version, folder):
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        gate = {"verdict": verdict} if verdict else None
        manifest = {"version": version, "gate": gate} | ({"prompt_format": prompt_format} if prompt_format else {})
        (folder / MANIFEST).write_text(json.dumps(manifest))
    return version


def test_versions_appear_only_when_complete(tmp_path: Path) -> None:
    store = AdapterStore(tmp_path / "adapters")
    assert write_version(store) == "v1"
    with pytest.raises(RuntimeError), store.new_version() as (version, folder):
        assert version == "v2"
        (folder / "adapter_model.safetensors").write_bytes(b"half")
        raise RuntimeError("the trainer crashed")
    with pytest.raises(AdapterError, match="no manifest"), store.new_version() as (_, folder):
        (folder / "adapter_model.safetensors").write_bytes(b"no manifest")
    assert [v.version for v in store.versions()] == ["v1"]
    assert not list((tmp_path / "adapters").glob(".partial-*"))
    assert write_version(store) == "v2"


class LoadedAdapters:
    """Stands in for the student's vLLM in the adapter-serving tests: which adapters are loaded."""

    def __init__(self, *loaded: str) -> None:
        self.loaded = set(loaded)
        self.formats: dict[str, str | None] = {}

    def adapters(self) -> list[str]:
        return sorted(self.loaded)

    def load_adapter(self, name: str, path: str | Path, format_name: str | None = None) -> None:
        self.loaded.add(name)
        self.formats[name] = format_name

    def unload_adapter(self, name: str) -> None:
        self.loaded.remove(name)


def test_one_path_serves_a_version_for_rounds_the_api_and_followers(tmp_path: Path) -> None:
    """serve() loads, activates (when switching) and unloads older versions; a follower of a switch made elsewhere
    (e.g. `mentee adapters activate`) takes the same path, and never unloads a candidate still in its gate."""
    from mentee.server.learning.adapters import serve

    store = AdapterStore(tmp_path / "adapters")
    v1, _, v3 = write_version(store), write_version(store), write_version(store, prompt_format="qa-bare")
    student = LoadedAdapters("student-v1", "student-v2")
    switched: list[str | None] = []

    def switch(adapter: object) -> None:
        switched.append(getattr(adapter, "version", None))

    serve(student, store, store.servable(v3), keep_loaded=2, switch=switch, reason="round")  # a round's pass
    assert store.active().version == v3 and switched == [v3]  # type: ignore[union-attr]
    assert student.adapters() == ["student-v2", "student-v3"]  # v1 unloaded: two kept
    assert student.formats["student-v3"] == "qa-bare"  # asked in the format it was trained in

    candidate = write_version(store, None)  # v4, trained, in its gate on another process
    student.load_adapter(f"student-{candidate}", store.get(candidate).path)
    store.activate(v1, reason="activated by hand")  # what the CLI does; servers follow
    serve(student, store, store.active(), keep_loaded=1, switch=switch)  # a worker following it
    assert switched == [v3, v1]
    assert student.adapters() == ["student-v1", "student-v4"]  # the old passed ones unloaded, the candidate kept
    assert store.history()[-1]["reason"] == "activated by hand"  # the follower switched nothing itself
    assert student.formats["student-v1"] is None  # an adapter from before formats were recorded: the student's


def test_a_stacked_version_is_served_with_those_beside_it_loaded_and_kept(tmp_path: Path) -> None:
    from mentee.server.learning.adapters import serve

    store = AdapterStore(tmp_path / "adapters")
    v1, v2 = write_version(store), write_version(store)
    v3 = write_version(store)
    store.update_manifest(v3, serves_with=[v1, v2])
    student = LoadedAdapters()
    switched: list[object] = []
    serve(student, store, store.servable(v3), keep_loaded=1, switch=switched.append, reason="round")
    assert student.adapters() == ["student-v1", "student-v2", "student-v3"]  # all three answer: none unloaded
    assert store.get(v3).beside == {"v1": "student-v1", "v2": "student-v2"}
    v4 = write_version(store, "refused")
    v5 = write_version(store)
    store.update_manifest(v5, serves_with=[v4])
    with pytest.raises(AdapterError, match="did not pass"):  # its items would be answered by none
        serve(student, store, store.servable(v5), keep_loaded=1, switch=switched.append, reason="round")
    assert store.active().version == v3  # type: ignore[union-attr]


def test_a_stack_grows_to_train_stack_max_then_a_round_consolidates(tmp_path: Path) -> None:
    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import Learner

    store = AdapterStore(tmp_path / "adapters")
    settings = load_settings(home=tmp_path, train_recipe="stack", train_stack_max=3)
    learner = Learner(settings, student=None, memory=None, store=store)  # type: ignore[arg-type]
    assert learner.stack_plan() == ([], False)  # the first round: nothing to serve beside
    v1, v2 = write_version(store), write_version(store)
    store.activate(v2)
    store.update_manifest(v2, serves_with=[v1])
    assert learner.stack_plan() == ([v1, v2], False)
    v3 = write_version(store)
    store.update_manifest(v3, serves_with=[v1, v2])
    store.activate(v3)
    assert learner.stack_plan() == ([], True)  # three served together: the next round folds them into one
    learner.settings = load_settings(home=tmp_path, train_recipe="warm")
    assert learner.stack_plan() == (None, False)
    with pytest.raises(ValueError, match="train_stack_max 4 must be below vllm_max_loras 4"):
        load_settings(home=tmp_path, train_recipe="stack", train_stack_max=4, vllm_max_loras=4)


def test_an_adapter_named_by_hand_is_loaded_with_its_format(tmp_path: Path) -> None:
    from mentee.server.learning.adapters import load_named

    store = AdapterStore(tmp_path / "adapters")
    write_version(store, prompt_format="qa-bare")
    student = LoadedAdapters("my-own-lora")
    load_named(student, store, "student-v1")
    load_named(student, store, "my-own-lora")  # not one of the store's: left as it is
    load_named(student, store, "student-v9")  # no such version: vLLM will say so when it is asked
    assert student.adapters() == ["my-own-lora", "student-v1"]
    assert student.formats == {"student-v1": "qa-bare"}


def test_only_passed_versions_are_activated_and_rollback(tmp_path: Path) -> None:
    store = AdapterStore(tmp_path / "adapters")
    first, refused, second = write_version(store), write_version(store, "refused"), write_version(store)
    assert store.active() is None
    with pytest.raises(AdapterError, match="did not pass"):
        store.activate(refused)
    with pytest.raises(AdapterError, match="did not pass"):
        store.activate(write_version(store, None))  # trained, never gated
    store.activate(second, reason="round")
    active = store.active()
    assert active is not None and (active.version, active.served_name) == ("v3", "student-v3")
    store.activate(first, reason="rollback")
    assert AdapterStore(tmp_path / "adapters").active().version == "v1"  # another worker reads the same
    assert [h["active"] for h in store.history()] == ["v3", "v1"]
    store.activate(None)
    assert store.active() is None
    with pytest.raises(InvalidRequestError, match="not an adapter version"):
        store.get("latest")


def test_versions_parse_strictly_and_sort_in_training_order() -> None:
    assert [version_number(v) for v in ("v1", "v12")] == [1, 12]
    for bad in ("v0", "v03", "3", "student-v3", "latest"):
        with pytest.raises(InvalidRequestError, match=f"not an adapter version: '{bad}'"):
            version_number(bad)
    assert sorted(["v10", "None", "v2", "v1"], key=version_order) == ["v1", "v2", "v10", "None"]


def test_anchors_keep_what_the_base_gets_right_split_for_good(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}?", "answers": [f"a{i}"]} for i in range(40)]
    known = {f"q{i}?" for i in range(0, 40, 2)}
    anchors = build_anchors(lambda q: f"a{q[1:-1]}" if q in known else "no idea", rows, source="x", limit=30)
    assert anchors.asked == 30
    assert {a.question for a in anchors.anchors} == {f"q{i}?" for i in range(0, 30, 2)}
    assert anchors.split("replay") and anchors.split("check")
    assert not {a.id for a in anchors.split("replay")} & {a.id for a in anchors.split("check")}
    again = build_anchors(lambda q: f"a{q[1:-1]}" if q in known else "", list(reversed(rows)), source="x", limit=40)
    same = {a.question: a.split for a in again.anchors}
    assert all(same[a.question] == a.split for a in anchors.anchors)  # the split does not depend on order
    save_anchors(tmp_path, anchors)
    assert load_anchors(tmp_path) == AnchorSet.from_dict(anchors.to_dict())


def test_round_mixes_new_replay_and_anchors(tmp_path: Path, embedder: Embedder) -> None:
    memory = Memory(path=tmp_path / "memory", embedder=embedder)
    taught = [memory.remember(f"Who founded company number {n}?", f"Person {n}", source="t") for n in range(6)]
    memory.mark_learned([r.id for r in taught[:4]], "v1")
    rows = [{"question": f"q{i}?", "answers": [f"a{i}"]} for i in range(20)]
    anchors = build_anchors(lambda q: f"a{q[1:-1]}", rows, source="x", limit=20)
    data = build_round(memory, anchors, replay_per_new=1.0, anchors_per_new=2.0)
    assert {e.id for e in data.new} == {r.id for r in taught[4:]}
    assert len(data.replay) == 2 and {e.id for e in data.replay} <= {r.id for r in taught[:4]}
    assert len(data.anchors) == min(4, len(anchors.split("replay")))
    assert {e.id for e in data.anchors}.isdisjoint({e.id for e in data.check_anchors})
    assert len(data.check_anchors) == len(anchors.split("check"))
    assert data.summary()["new"] == 2
    everything = build_round(memory, anchors, replay_per_new=0.0, replay_all=True)  # a consolidation's replay
    assert {e.id for e in everything.replay} == {r.id for r in taught[:4]}
    # the gate's retention checks sample everything taught before, replayed this round or not
    assert {e.id for e in data.retention} == {r.id for r in taught[:4]}
    assert {e.learned_by for e in data.retention} == {"v1"} and data.summary()["retention_checks"] == {"v1": 4}


def test_retention_checks_take_as_many_from_each_round_as_it_has(tmp_path: Path, embedder: Embedder) -> None:
    memory = Memory(path=tmp_path / "memory", embedder=embedder)
    for version, count in (("v1", 30), ("v2", 5), ("v10", 30)):
        records = [memory.remember(f"{version} question {n}?", f"answer {n}", source="t") for n in range(count)]
        memory.mark_learned([r.id for r in records], version)
    learned = memory.list()
    checks = retention_checks(learned, 20, seed=3)
    rounds = [e.learned_by for e in checks]
    assert rounds == sorted(rounds, key=version_order)  # v1, v2, v10: the order the rounds came
    assert {v: rounds.count(v) for v in ("v1", "v2", "v10")} in (
        {"v1": 8, "v2": 5, "v10": 7},
        {"v1": 7, "v2": 5, "v10": 8},
    )
    assert all(e.question.startswith(f"{e.learned_by} ") and e.kind == "retention" for e in checks)
    assert checks == retention_checks(list(reversed(learned)), 20, seed=3)  # seeded, not by listing order
    assert len(retention_checks(learned, 1000)) == 65 and retention_checks(learned, 0) == ()
    with pytest.raises(InvalidRequestError, match="retention sample"):
        retention_checks(learned, -1)


def test_training_pairs_follow_the_prompt_format() -> None:
    prompt, completion = training_pair(QAPromptFormat(), "Who wrote Dracula?", "Bram  Stoker")
    assert prompt.endswith("Q: Who wrote Dracula?\nA:")
    assert completion == " Bram Stoker\n"


def example(n: int, kind: str = "new") -> Example:
    return Example(str(n), f"question {n}?", f"answer {n}", kind)  # type: ignore[arg-type]


def test_gate_passes_a_student_that_learned_and_forgot_nothing() -> None:
    new, replay, anchors = (
        [example(i) for i in range(10)],
        [example(i, "replay") for i in range(10, 15)],
        [example(i, "anchor") for i in range(20, 40)],
    )
    report = run_gate(lambda q: q.replace("question", "answer"), new=new, retained=replay, check_anchors=anchors)
    assert report.passed, report.reasons
    assert (report.new_recall, report.retention, report.anchor_accuracy) == (1.0, 1.0, 1.0)


def test_gate_refuses_no_learning_and_forgetting() -> None:
    new, anchors = [example(i) for i in range(10)], [example(i, "anchor") for i in range(20, 40)]
    nothing_learned = run_gate(lambda q: "?", new=new, retained=[], check_anchors=[])
    assert not nothing_learned.passed and "did not learn" in nothing_learned.reasons[0]

    def forgetful(question: str) -> str:  # learned the new items, lost 3 of 20 anchors
        number = int(question.split()[1].rstrip("?"))
        return "?" if number in (20, 21, 22) else question.replace("question", "answer")

    report = run_gate(forgetful, new=new, retained=[], check_anchors=anchors, thresholds=GateThresholds())
    assert not report.passed
    assert "forgot what the base model knew" in report.reasons[0]
    assert report.anchor_accuracy == 0.85 and report.base_anchor_accuracy == 1.0
    assert len(report.misses["anchors"]) == 3
    lenient = GateThresholds(max_anchor_drop=0.2)
    assert run_gate(forgetful, new=new, retained=[], check_anchors=anchors, thresholds=lenient).passed


def taught_by(version: str, numbers: range) -> list[Example]:
    return [
        Example(f"{version}-{n}", f"question {n}?", f"answer {n}", "retention", learned_by=version) for n in numbers
    ]


def test_gate_refuses_an_adapter_that_forgot_an_earlier_round_and_names_it() -> None:
    new = [example(i) for i in range(100, 110)]
    retained = taught_by("v1", range(10)) + taught_by("v2", range(10, 20))
    paraphrases = [replace(e, id=f"{e.id}:heldout0", question=f"{e.question} again") for e in retained[:3]]

    def forgot_round_1(question: str) -> str:
        number = int(question.split()[1].rstrip("?"))
        return "?" if number < 10 else f"answer {number}"

    report = run_gate(forgot_round_1, new=new, retained=retained, check_anchors=[], retained_paraphrases=paraphrases)
    assert not report.passed and report.retention == 0.5
    assert report.reasons == ("forgot taught items: retention 0.50 < 0.90; forgot round v1 (0.00 of 10)",)
    assert report.retention_by_round == {
        "v1": {"items": 10, "recall": 0.0, "paraphrases": 3, "paraphrase_recall": 0.0},
        "v2": {"items": 10, "recall": 1.0, "paraphrases": 0, "paraphrase_recall": None},
    }
    assert report.retained_paraphrase_recall == 0.0 and report.counts["retained_paraphrases"] == 3

    # one small round forgotten is refused even when the others hold the overall share above gate_min_retention
    retained = taught_by("v1", range(10)) + [
        e for v in range(2, 6) for e in taught_by(f"v{v}", range(v * 10, v * 10 + 10))
    ]

    def forgot_part_of_round_1(question: str) -> str:
        number = int(question.split()[1].rstrip("?"))
        return "?" if number < 3 else f"answer {number}"

    report = run_gate(forgot_part_of_round_1, new=new, retained=retained, check_anchors=[])
    assert report.retention == 0.94 and not report.passed
    assert report.reasons == ("forgot round v1 (0.70 of 10): below 0.80 each",)
    assert run_gate(forgot_part_of_round_1, new=new, retained=retained, check_anchors=[],
                    thresholds=GateThresholds(min_round_retention=0.7)).passed  # fmt: skip


def test_gate_takes_the_base_models_accuracy_measured_before() -> None:
    new, anchors = [example(i) for i in range(4)], [example(i, "anchor") for i in range(20, 30)]

    def never(question: str) -> str:
        raise AssertionError("the base model was asked again")

    report = run_gate(
        lambda q: q.replace("question", "answer"), new=new, retained=[], check_anchors=anchors, base_ask=never,
        base_accuracy=0.9,
    )  # fmt: skip
    assert report.passed and report.base_anchor_accuracy == 0.9 and report.anchor_accuracy == 1.0


class SlowLearner:
    """Stands in for the Learner in the runner's own tests: a round that waits until released."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.rounds = 0
        self.trainer_process = None

    def running_elsewhere(self) -> bool:
        return False

    def run_round(self, progress=None):  # type: ignore[no-untyped-def]
        from mentee.server.learning.round import RoundOutcome

        self.rounds += 1
        if progress is not None:
            progress({"phase": "training", "step": 1, "total_steps": 2})
        self.release.wait(10)
        return RoundOutcome(state="passed", adapter=f"v{self.rounds}")


def test_rounds_run_one_at_a_time_and_on_schedule(tmp_path: Path, embedder: Embedder) -> None:
    import time

    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import LearningError
    from mentee.server.learning.runner import RoundRunner

    memory = Memory(path=tmp_path / "memory", embedder=embedder)
    learner = SlowLearner()
    runner = RoundRunner(lambda: learner, load_settings(learn_after_items=2), memory)  # type: ignore[arg-type,return-value]
    assert runner.due() is None
    memory.remember("Who wrote Dracula?", "Bram Stoker", source="t")
    memory.remember("Who wrote Emma?", "Jane Austen", source="t")
    assert runner.due() == "2 new items (learn_after_items = 2)"
    job = runner.submit()
    with pytest.raises(LearningError, match="already") as refused:
        runner.submit()
    assert refused.value.round_id == job.id  # the running round, as data (the API's 409 carries it)
    assert runner.due() is None  # busy
    deadline = time.monotonic() + 5
    while runner.get(job.id).progress.get("step") != 1 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.05)
    assert job.to_dict()["state"] == "running"
    learner.release.set()
    while runner.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = job.to_dict()
    assert (finished["state"], finished["adapter"]) == ("passed", "v1")
    assert runner.submit().id != job.id  # the next one may start


def test_gate_asks_several_questions_at_once_and_keeps_each_answer_with_its_question() -> None:
    new, anchors = [example(i) for i in range(12)], [example(i, "anchor") for i in range(20, 32)]
    in_flight, most = 0, 0
    lock = threading.Lock()
    both_waiting = threading.Barrier(2, timeout=10)  # proves two questions were asked at the same time

    def ask(question: str) -> str:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        if question == "question 0?" or question == "question 1?":
            both_waiting.wait()
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        number = int(question.split()[1].rstrip("?"))
        return "?" if number in (3, 25) else question.replace("question", "answer")

    report = run_gate(ask, new=new, retained=[], check_anchors=anchors, concurrency=4)
    assert 2 <= most <= 4
    assert report.new_recall == round(11 / 12, 4) and report.anchor_accuracy == round(11 / 12, 4)
    assert [m["question"] for m in report.misses["new"] + report.misses["anchors"]] == ["question 3?", "question 25?"]


def test_one_round_at_a_time_across_the_processes_sharing_the_adapters(tmp_path: Path) -> None:
    """API workers and a trainer service share one adapters store; a round elsewhere holds its lock file."""
    import subprocess
    import sys

    from filelock import FileLock

    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import Learner, LearningError

    store = AdapterStore(tmp_path / "adapters")
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock\n"
            f"with FileLock({str(store.root / '.round.lock')!r}):\n print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        learner = Learner(load_settings(home=tmp_path), student=None, memory=None, store=store)  # type: ignore[arg-type]
        with pytest.raises(LearningError, match="another process"):
            learner.run_round()
    finally:
        other.kill()
        other.wait()
    with FileLock(str(store.root / ".round.lock")).acquire(timeout=5):  # a killed holder lets it go
        pass


def test_epoch_recall_counts_each_example_once_overall_and_per_kind() -> None:
    from mentee.server.learning.trainer import EpochRecall

    recall = EpochRecall(["new", "new", "replay", "new"])
    recall.record([0, 1], [False, True])
    recall.record([2, 3], [True, True])
    recall.record([0], [True])  # seen again in the epoch: its last outcome counts
    assert recall.take_shares() == {"all": 1.0, "new": 1.0, "replay": 1.0}
    recall.record([0, 1, 2, 3], [False, False, True, True])
    assert recall.take_shares() == {"all": 0.5, "new": 0.3333, "replay": 1.0}
    assert recall.take_shares() == {}  # nothing recorded since


def test_the_base_models_anchor_answers_are_asked_once_and_kept_across_processes(tmp_path: Path) -> None:
    """A gate needs the base model's answers to its held-out anchors: asked once per base model, prompt and decoding,
    kept in the home, so the next round (in this process or another) asks only anchors it has not seen."""
    from types import SimpleNamespace

    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import BASE_ANCHORS, Learner
    from mentee.server.student.prompting import QAPromptFormat

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    asked: list[str] = []

    class BaseStudent:
        prompt_format = QAPromptFormat()

        def __init__(self) -> None:
            self.model_dir = model_dir

        def generate(self, question: str, adapter: str | None = None) -> SimpleNamespace:
            asked.append(question)
            return SimpleNamespace(text=f"answer to {question}")

    def learner() -> Learner:
        settings = load_settings(home=tmp_path, gate_concurrency=2)
        store = AdapterStore(tmp_path / "adapters")
        return Learner(settings, student=BaseStudent(), memory=None, store=store)  # type: ignore[arg-type]

    anchors = [Example(f"a{i}", f"q{i}?", "a", "anchor") for i in range(3)]
    first = learner()._base_answers(anchors)
    assert first == {f"q{i}?": f"answer to q{i}?" for i in range(3)} and sorted(asked) == ["q0?", "q1?", "q2?"]
    assert (tmp_path / BASE_ANCHORS).is_file()
    again = learner()._base_answers([*anchors, Example("a3", "q3?", "a", "anchor")])  # another process
    assert again["q0?"] == "answer to q0?" and sorted(asked) == ["q0?", "q1?", "q2?", "q3?"]  # only q3 was new
    (model_dir / "model.safetensors").write_bytes(b"other weights")  # another base model: asked again
    learner()._base_answers(anchors[:1])
    assert asked[-1] == "q0?" and len(asked) == 5


def test_the_gate_trusts_the_prescreen_only_above_its_margin_and_only_while_vllm_agrees(tmp_path: Path) -> None:
    """Questions the trainer found answered under teacher forcing (by the margin) are not asked through vLLM,
    except a sample that checks it: one answered otherwise, and every question is asked."""
    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import Learner

    settings = load_settings(home=tmp_path, gate_prescreen_margin=1.0, gate_prescreen_verify=2, gate_concurrency=2)
    learner = Learner(settings, student=None, memory=None, store=AdapterStore(tmp_path / "adapters"))  # type: ignore[arg-type]
    prescreened = {
        "q1?": {"answer": "one", "margin": 3.0},
        "q2?": {"answer": "two", "margin": 1.5},
        "q3?": {"answer": "three", "margin": 0.4},  # below the margin: asked
        "q4?": {"answer": None, "margin": None},  # no accepted answer written: asked
    }
    vllm = {"q1?": "one", "q2?": " two ", "q3?": "three", "q4?": "four"}
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return vllm[question]

    trusted, screen = learner._trust_prescreen(prescreened, ask)
    assert trusted == {"q1?": "one", "q2?": " two "} and sorted(asked) == ["q1?", "q2?"]  # the sample: both
    assert screen | {"disagreed": None} == {
        "checked": 4,
        "margin": 1.0,
        "passed": 2,
        "verified": 2,
        "disagreed": None,
        "trusted": 2,
    }
    vllm["q2?"] = "deux"  # the served model says otherwise than the trainer: nothing is trusted
    trusted, screen = learner._trust_prescreen(prescreened, ask)
    assert trusted == {} and screen["trusted"] == 0
    assert screen["disagreed"] == [{"question": "q2?", "prescreen": "two", "said": "deux"}]


def test_a_home_without_anchors_builds_them_from_the_student_s_own_right_answers(tmp_path: Path) -> None:
    """The first round (or start-up) asks the base student the anchors' QA file and keeps its right answers; too
    few is an error that saves nothing; another student without a QA file is told what to set; the embedded
    student's packaged file is what it builds from by default."""
    from types import SimpleNamespace

    from mentee.server.core.config import load_settings
    from mentee.server.learning.round import Learner, LearningError, NoAnchorSourceError
    from mentee.server.student.models import embedded_known_questions

    asked: list[str] = []
    knows = {f"q{i}?" for i in range(0, 60, 2)}  # every other question: 30 right

    class BaseStudent:
        def generate(self, question: str, adapter: str | None = None) -> SimpleNamespace:
            assert adapter is None  # the base model, never an adapter
            asked.append(question)
            return SimpleNamespace(text=f"a{question[1:-1]}" if question in knows else "no idea")

    qa_file = tmp_path / "qa.jsonl"
    qa_file.write_text("".join(json.dumps({"question": f"q{i}?", "answers": [f"a{i}"]}) + "\n" for i in range(60)))

    def learner(home: Path, **settings: object) -> Learner:
        options = {"home": home, "student_model": str(tmp_path), "gate_concurrency": 4} | settings
        return Learner(load_settings(**options), student=BaseStudent(), memory=None)  # type: ignore[arg-type]

    updates: list[dict] = []
    built = learner(tmp_path / "a", anchors_qa_file=str(qa_file), anchors_min_check=5).ensure_anchors(updates.append)
    assert sorted(asked) == sorted(f"q{i}?" for i in range(60)) and len(built.anchors) == 30
    assert {a.question for a in built.anchors} == knows and built.split("check") and built.split("replay")
    assert load_anchors(tmp_path / "a") == AnchorSet.from_dict(built.to_dict())
    assert updates[0] == {"phase": "anchors", "asking": 60, "source": str(qa_file)}
    assert updates[-1]["anchors"] == 30 and updates[-1]["check"] == len(built.split("check"))
    asked.clear()
    assert learner(tmp_path / "a").ensure_anchors() == load_anchors(tmp_path / "a") and not asked  # kept: not asked

    with pytest.raises(LearningError, match=r"too few anchors: .* 30 of 60 questions .*anchors_min_check 50"):
        learner(tmp_path / "b", anchors_qa_file=str(qa_file), anchors_min_check=50).ensure_anchors()
    assert load_anchors(tmp_path / "b") is None
    with pytest.raises(NoAnchorSourceError, match="set anchors_qa_file"):
        learner(tmp_path / "c").ensure_anchors()  # a student of its own, no QA file
    assert learner(tmp_path / "d", student_model="").anchors_source() == embedded_known_questions()
    packaged = [json.loads(line) for line in embedded_known_questions().read_text().splitlines()]
    assert len(packaged) == 107 and all(row["question"] and row["answers"] for row in packaged)
