"""Distillation set-ups (answer, rationale, consistency, paraphrase) and the gate's held-out paraphrases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mentee.memory.embedder import Embedder
from mentee.server.core.config import load_settings
from mentee.server.core.errors import InvalidRequestError
from mentee.server.learning.dataset import (
    Example,
    RoundData,
    load_question_pairs,
    normalize_question,
    paraphrase_checks,
)
from mentee.server.learning.distill import RATIONALE_PREFIX, agrees, distill
from mentee.server.learning.gate import GateThresholds, run_gate
from mentee.server.learning.round import Learner
from mentee.server.teachers import GuardedTeacher, TeacherLimits
from mentee.server.teachers.base import EXPLAIN_PROMPT
from mentee.server.teachers.openai_compatible import OpenAICompatibleTeacher
from mentee.server.teachers.reference import ReferenceTeacher
from tests.teacher_server import running_teacher

NEW = (
    Example("a", "Who wrote The Old Man and the Sea?", "Ernest Hemingway", "new"),
    Example("b", "What is the capital of Peru?", "Lima", "new"),
)


def chat_teacher(url: str) -> GuardedTeacher:
    return GuardedTeacher(OpenAICompatibleTeacher(url, "big-model", timeout_s=2), TeacherLimits(backoff_s=0.01))


def test_answer_set_up_teaches_the_answers_as_they_are() -> None:
    distilled = distill(NEW, None, "answer")
    assert distilled.new == NEW and not distilled.extra and distilled.teacher_calls == 0
    with pytest.raises(InvalidRequestError, match="'sideways'"):
        distill(NEW, None, "sideways")


def test_paraphrase_set_up_trains_the_teachers_rewordings() -> None:
    paraphrases = {
        NEW[0].question: "1. Who is the author of The Old Man and the Sea?\n2) who wrote the old man and the sea\n"
        "- Which writer wrote The Old Man and the Sea?\nThe Old Man and the Sea was written by whom?",
        NEW[1].question: "Which city is the capital of Peru?",
    }
    with running_teacher(paraphrases=paraphrases) as (url, handler):
        teacher = chat_teacher(url)
        held_out = {normalize_question("Which writer wrote The Old Man and the Sea?")}
        distilled = distill(NEW, teacher, "paraphrase", paraphrases=2, exclude=held_out)
        assert distilled.new == NEW
        assert [(e.id, e.question, e.answer, e.kind) for e in distilled.extra] == [
            ("a:p0", "Who is the author of The Old Man and the Sea?", "Ernest Hemingway", "paraphrase"),
            ("a:p1", "The Old Man and the Sea was written by whom?", "Ernest Hemingway", "paraphrase"),
            ("b:p0", "Which city is the capital of Peru?", "Lima", "paraphrase"),
        ]  # numbering stripped; the question itself and the gate's held-out paraphrase never trained on
        assert distilled.teacher_calls == 2 and teacher.ledger.totals()["calls"] == 2
        assert "2 different ways" in handler.received[0]["messages"][0]["content"]


def test_rationale_set_up_adds_an_explain_task() -> None:
    key = f"Question: {NEW[0].question}\nAnswer: {NEW[0].answer}"
    answers = {key: "Hemingway wrote the novella in 1951 in Cuba;\n it won him the Pulitzer: Ernest Hemingway."}
    with running_teacher(answers=answers) as (url, handler):
        distilled = distill(NEW[:1], chat_teacher(url), "rationale")
        assert distilled.new == NEW[:1]
        (rationale,) = distilled.extra
        assert rationale.question == RATIONALE_PREFIX + NEW[0].question and rationale.kind == "rationale"
        assert (
            rationale.answer
            == "Hemingway wrote the novella in 1951 in Cuba; it won him the Pulitzer: Ernest Hemingway."
        )
        assert handler.received[0]["messages"][0]["content"] == EXPLAIN_PROMPT


def test_consistency_set_up_holds_back_what_the_teacher_does_not_repeat() -> None:
    sampled = {NEW[0].question: "Ernest Hemingway", NEW[1].question: "Cusco"}
    with running_teacher(sampled=sampled) as (url, handler):
        teacher = chat_teacher(url)
        distilled = distill(NEW, teacher, "consistency", samples=3)
        assert distilled.new == NEW[:1]
        assert distilled.held_back == (
            {"id": "b", "question": NEW[1].question, "answer": "Lima", "other_answers": ["Cusco", "Cusco"]},
        )
        assert distilled.teacher_calls == 4 and teacher.ledger.totals()["calls"] == 4
        assert {body["temperature"] for body in handler.received} == {0.7}  # re-asked at a temperature
        assert distilled.summary()["held_back_count"] == 1


def test_a_teacher_that_is_down_costs_items_their_extras_only() -> None:
    with running_teacher(mode="error") as (url, _):
        teacher = chat_teacher(url)
        paraphrased = distill(NEW, teacher, "paraphrase")
        assert paraphrased.new == NEW and not paraphrased.extra and "2 teacher call(s) failed" in paraphrased.notes[0]
        checked = distill(NEW, teacher, "consistency")
        assert not checked.new and len(checked.held_back) == 2 and "error" in checked.held_back[0]


def test_reference_teacher_rewords_but_writes_no_rationales(tmp_path: Path, embedder: Embedder) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": NEW[1].question, "answers": ["Lima"]}) + "\n")
    teacher = GuardedTeacher(ReferenceTeacher(qa, embedder))
    paraphrased = distill(NEW[1:], teacher, "paraphrase", paraphrases=2)
    assert [e.question for e in paraphrased.extra] == [
        "Do you know what is the capital of Peru?",
        "Tell me: what is the capital of Peru?",
    ]
    explained = distill(NEW, teacher, "rationale")
    assert explained.new == NEW and not explained.extra
    assert explained.notes == (f"the teacher {teacher.name} writes no rationales: this round taught plain answers",)
    assert distill(NEW[1:], teacher, "consistency").new == NEW[1:]  # a file answers the same every time


def test_agreement_is_containment_either_way() -> None:
    assert agrees("Ernest Hemingway", "Hemingway") and agrees("hemingway", "Ernest Hemingway.")
    assert not agrees("Lima", "Cusco")


PAIRS = [
    {"q1": "who wrote the old man and the sea", "q2": "author of the old man and the sea", "a2": ["Hemingway"]},
    {"q1": "what is the capital of peru", "q2": "what is the capital of chile", "same_answer": False},
]


def write_pairs(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_held_out_paraphrases_come_from_the_pairs_file(tmp_path: Path) -> None:
    pairs = load_question_pairs(write_pairs(tmp_path / "pairs.jsonl", PAIRS))
    assert len(pairs) == 1  # a pair with different answers is no paraphrase
    (check,) = paraphrase_checks(NEW, pairs)
    assert (check.id, check.question, check.kind) == ("a:heldout0", "author of the old man and the sea", "paraphrase")
    assert check.accepted == ("Ernest Hemingway", "Hemingway")
    with pytest.raises(InvalidRequestError, match="does not exist"):
        load_question_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(InvalidRequestError, match="line 2: needs 'q1' and 'q2'"):
        load_question_pairs(write_pairs(tmp_path / "bad.jsonl", [PAIRS[0], {"q1": "only one"}]))


def test_gate_can_require_paraphrase_recall() -> None:
    paraphrases = [Example("a:heldout0", "author of the old man and the sea", "Ernest Hemingway", "paraphrase")]
    knows_only_the_taught_wording = {e.question: e.answer for e in NEW}.get
    report = run_gate(
        lambda q: knows_only_the_taught_wording(q) or "?",
        new=NEW,
        retained=[],
        check_anchors=[],
        paraphrases=paraphrases,
        thresholds=GateThresholds(min_paraphrase_recall=0.5),
    )
    assert not report.passed and report.paraphrase_recall == 0.0
    assert report.reasons == ("paraphrase recall 0.00 < 0.50",)


def test_learner_applies_the_set_up_and_the_gates_paraphrases(tmp_path: Path) -> None:
    pairs = write_pairs(
        tmp_path / "pairs.jsonl",
        [*PAIRS, {"q1": "What is the capital of Peru?", "q2": "capital city of peru", "a2": ["Lima"]}],
    )
    settings = load_settings(
        home=tmp_path, distillation="consistency", gate_paraphrase_file=str(pairs), gate_min_paraphrase_recall=0.5
    )
    with running_teacher(sampled={NEW[0].question: "Hemingway", NEW[1].question: "Cusco"}) as (url, _):
        learner = Learner(settings, student=None, memory=None, teacher=chat_teacher(url))  # type: ignore[arg-type]
        data = learner.distill(RoundData(new=NEW, replay=(), anchors=(), check_anchors=()))
    assert [e.id for e in data.new] == ["a"]
    assert [c.id for c in data.paraphrase_checks] == ["a:heldout0"]  # the held-back item's paraphrase goes too
    assert data.summary()["distillation"]["setup"] == "consistency"
    assert learner.thresholds().min_paraphrase_recall == 0.5
