"""The router's decisions, with a scripted student, the real memory, and LangChain chat models as teachers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.core.errors import InvalidRequestError
from mentee.server.serving.adapter_scope import adapter_for
from mentee.server.serving.router import NoSourceError, Router, Switches, guard_problems, stands_alone
from mentee.server.student.client import Generation, TokenLogprob
from mentee.server.student.prompting import ChatMessage
from mentee.server.teachers import GuardedTeacher, TaughtItem, Teacher, TeacherAnswer, TeacherUnavailableError
from mentee.server.teachers.langchain_model import LangChainTeacher


def generation(text: str, probability: float, finish: str = "stop") -> Generation:
    tokens = tuple(TokenLogprob(t, math.log(probability)) for t in text.split()) or (TokenLogprob("", -9.0),)
    return Generation(text=text, tokens=tokens, finish_reason=finish, model="student", completion_tokens=len(tokens))


class ScriptedStudent:
    def __init__(self, *answers: Generation) -> None:
        self.answers = list(answers)
        self.asked: list[Sequence[ChatMessage]] = []
        self.adapters: list[str | None] = []

    def generate(self, messages: Sequence[ChatMessage] | str, *, adapter: str | None = None) -> Generation:
        self.asked.append(messages)  # type: ignore[arg-type]
        self.adapters.append(adapter)
        return self.answers.pop(0)


class RecordingTeacher(Teacher):
    name = "teacher:test"

    def __init__(self, answer: str = "Lima", fail: bool = False) -> None:
        self.answer, self.fail = answer, fail
        self.contexts: list[Sequence[TaughtItem]] = []

    def ask(self, messages: Sequence[ChatMessage], *, context: Sequence[TaughtItem] = ()) -> TeacherAnswer:
        self.contexts.append(context)
        if self.fail:
            raise TeacherUnavailableError("down")
        return TeacherAnswer(text=self.answer, model="big", tokens_in=30, tokens_out=2)


@pytest.fixture
def memory(tmp_path: Path, embedder: Embedder) -> Memory:
    return Memory(path=tmp_path / "memory", embedder=embedder)


def test_unknown_question_is_taught_then_served_from_memory(memory: Memory) -> None:
    student = ScriptedStudent(generation("Quito", 0.1))
    router = Router(student, memory=memory, teacher=GuardedTeacher(RecordingTeacher()), threshold=0.5)
    first = router.answer("What is the capital of Peru?")
    assert (first.text, first.source) == ("Lima", "teacher")
    assert first.memory_id is not None
    assert "student confidence 0.100 below 0.500" in first.reasons
    again = router.answer("what is the capital of peru")
    assert (again.text, again.source, again.memory_id) == ("Lima", "memory", first.memory_id)
    paraphrase = router.answer("What's the capital city of Peru?")
    assert paraphrase.source == "memory"
    assert len(student.asked) == 1  # the student was asked once; memory answered the rest


def test_confident_student_answers_itself(memory: Memory) -> None:
    teacher = RecordingTeacher()
    router = Router(ScriptedStudent(generation("Paris", 0.9)), memory=memory, teacher=teacher, threshold=0.5)
    answer = router.answer("What is the capital of France?")
    assert (answer.text, answer.source, answer.confidence) == ("Paris", "student", pytest.approx(0.9))
    assert teacher.contexts == []
    assert memory.count() == 0


@pytest.mark.parametrize(
    ("student_answer", "problem"),
    [
        (generation("1000000000000", 0.99), "runaway repetition"),
        (generation("the the the the the the the", 0.99), "runaway repetition"),
        (generation("", 0.99), "empty answer"),
        (generation("a very long", 0.99, finish="length"), "cut off"),
    ],
)
def test_guards_send_confident_nonsense_to_the_teacher(
    memory: Memory, student_answer: Generation, problem: str
) -> None:
    assert any(problem in p for p in guard_problems(student_answer))
    router = Router(ScriptedStudent(student_answer), memory=memory, teacher=RecordingTeacher(), threshold=0.5)
    answer = router.answer("What is the population of Lima?")
    assert answer.source == "teacher"
    assert any(problem in r for r in answer.reasons)


def test_switches(memory: Memory) -> None:
    memory.remember("What is the capital of Peru?", "Lima", source="teacher:x")
    student = ScriptedStudent(generation("Quito", 0.2), generation("Quito", 0.2))
    teacher = RecordingTeacher(answer="Lima")
    router = Router(student, memory=memory, teacher=teacher, threshold=0.5)
    alone = router.answer("What is the capital of Peru?", Switches(memory=False, teacher=False))
    assert (alone.text, alone.source, alone.low_confidence) == ("Quito", "student", True)
    assert "teacher off" in alone.reasons
    no_learning = router.answer("Who wrote Hamlet?", Switches(learn=False))
    assert no_learning.source == "teacher"
    assert no_learning.memory_id is None
    assert memory.count() == 1


def test_teacher_failure_falls_back_or_fails_in_strict_mode(memory: Memory) -> None:
    router = Router(
        ScriptedStudent(generation("Quito", 0.2)), memory=memory, teacher=RecordingTeacher(fail=True), threshold=0.5
    )
    answer = router.answer("What is the capital of Peru?")
    assert (answer.source, answer.low_confidence) == ("student", True)
    assert any("teacher failed" in r for r in answer.reasons)
    strict = Router(
        ScriptedStudent(generation("Quito", 0.2)),
        memory=memory,
        teacher=RecordingTeacher(fail=True),
        threshold=0.5,
        strict=True,
    )
    with pytest.raises(NoSourceError, match="teacher failed"):
        strict.answer("What is the capital of Peru?")


def test_a_refusal_is_never_remembered(memory: Memory) -> None:
    teacher = LangChainTeacher(FakeListChatModel(responses=["I don't know."]))
    router = Router(ScriptedStudent(generation("Quito", 0.2)), memory=memory, teacher=GuardedTeacher(teacher))
    answer = router.answer("What is the capital of Peru?")
    assert answer.low_confidence
    assert any("unusable" in r for r in answer.reasons)
    assert memory.count() == 0


def test_follow_ups_skip_memory_and_are_not_remembered_as_is(memory: Memory) -> None:
    memory.remember("and its population?", "wrong", source="teacher:x")
    router = Router(ScriptedStudent(generation("?", 0.1)), memory=memory, teacher=RecordingTeacher("10 million"))
    conversation = [
        ChatMessage("user", "What is the capital of Peru?"),
        ChatMessage("assistant", "Lima"),
        ChatMessage("user", "and its population?"),
    ]
    answer = router.answer(conversation)
    assert (answer.text, answer.source, answer.memory_id) == ("10 million", "teacher", None)
    assert any("follow-up" in r for r in answer.reasons)
    assert memory.count() == 1


def test_a_question_that_stands_alone_mid_conversation_is_answered_from_memory(memory: Memory) -> None:
    memory.remember("Who wrote the novel Moby-Dick?", "Herman Melville", source="teacher:x")
    router = Router(ScriptedStudent(generation("?", 0.1)), memory=memory, teacher=RecordingTeacher("x"))
    before = [ChatMessage("user", "What is the capital of Peru?"), ChatMessage("assistant", "Lima")]
    answer = router.answer([*before, ChatMessage("user", "who wrote the novel moby dick?")])
    assert (answer.text, answer.source) == ("Herman Melville", "memory")
    for follow_up in ("and who wrote it?", "Who wrote that one?", "why?", "What about Moby-Dick?"):
        assert not stands_alone([*before, ChatMessage("user", follow_up)]), follow_up


def test_relevant_memory_goes_to_the_teacher_as_context(memory: Memory) -> None:
    memory.remember("Who discovered penicillin?", "Alexander Fleming", source="person:a", trust="human")
    teacher = RecordingTeacher("Alexander Fleming")
    router = Router(ScriptedStudent(generation("?", 0.1)), memory=memory, teacher=teacher)
    router.answer("In which year was penicillin discovered?")
    assert TaughtItem("Who discovered penicillin?", "Alexander Fleming", "human") in teacher.contexts[0]


def test_a_follow_up_is_remembered_under_the_teachers_standalone_rewrite(memory: Memory) -> None:
    chat = FakeListChatModel(
        responses=["About 10 million", "What is the population of Lima?", "Lima has about 10 million people"]
    )
    teacher = GuardedTeacher(LangChainTeacher(chat))
    router = Router(ScriptedStudent(generation("?", 0.1)), memory=memory, teacher=teacher)
    conversation = [
        ChatMessage("user", "What is the capital of Peru?"),
        ChatMessage("assistant", "Lima"),
        ChatMessage("user", "and its population?"),
    ]
    answer = router.answer(conversation)
    assert (answer.text, answer.source, answer.remembered_as) == (
        "About 10 million",
        "teacher",
        "What is the population of Lima?",
    )
    # the answer, the rewrite, and the rewrite asked alone (what is remembered), all in the ledger
    assert teacher.ledger.totals()["calls"] == 3
    direct = router.answer("What's the population of Lima?")
    assert (direct.source, direct.text, direct.memory_id) == (
        "memory",
        "Lima has about 10 million people",
        answer.memory_id,
    )


def test_a_useless_rewrite_is_not_remembered(memory: Memory) -> None:
    chat = FakeListChatModel(responses=["About 10 million", "I don't know."])
    router = Router(
        ScriptedStudent(generation("?", 0.1)), memory=memory, teacher=GuardedTeacher(LangChainTeacher(chat))
    )
    answer = router.answer(
        [ChatMessage("user", "Capital of Peru?"), ChatMessage("assistant", "Lima"), ChatMessage("user", "and size?")]
    )
    assert answer.source == "teacher"
    assert answer.memory_id is None
    assert any("rewrite is unusable" in r for r in answer.reasons)
    assert memory.count() == 0


def test_learned_items_are_answered_by_the_student_checked_against_memory(memory: Memory) -> None:
    learned = memory.remember("Who wrote the novel Dracula?", "Bram Stoker", source="teacher:x")
    memory.mark_learned([learned.id], "v1")
    student = ScriptedStudent(generation("Bram Stoker", 0.3), generation("Mary Shelley", 0.9))
    router = Router(student, memory=memory, teacher=RecordingTeacher(), threshold=0.5, adapter="student-v1")
    answer = router.answer("Who wrote the novel Dracula?")
    assert (answer.text, answer.source, answer.adapter) == ("Bram Stoker", "student", "student-v1")
    assert any("memory agrees" in r for r in answer.reasons)
    wrong = router.answer("who wrote the novel dracula")  # the adapter slipped: memory stays the fallback
    assert (wrong.text, wrong.source) == ("Bram Stoker", "memory")
    assert student.adapters == ["student-v1", "student-v1"]


def test_taught_scope_routes_between_adapter_and_base_model(memory: Memory) -> None:
    learned = memory.remember("Who wrote the novel Dracula?", "Bram Stoker", source="teacher:x")
    memory.mark_learned([learned.id], "v1")
    memory.remember("What is the capital of Peru?", "Lima", source="teacher:x")  # remembered, not learned
    assert adapter_for("Who is the author of Dracula?", "student-v1", memory) == "student-v1"
    assert adapter_for("How tall is Mount Everest?", "student-v1", memory) is None
    assert adapter_for("What is Peru's capital?", "student-v1", memory) is None
    unlearned = memory.recall("What is the capital of Peru?")
    assert unlearned is not None
    assert adapter_for("What is Peru's capital?", "v2", memory, also_learned={unlearned.record.id}) == "v2"
    assert adapter_for("How tall is Mount Everest?", "student-v1", memory, scope="all") == "student-v1"
    assert adapter_for("How tall is Mount Everest?", None, memory) is None
    student = ScriptedStudent(generation("8,849 m", 0.9), generation("Bram Stoker", 0.9))
    router = Router(student, memory=memory, teacher=RecordingTeacher(), threshold=0.5, adapter="student-v1")
    base = router.answer("How tall is Mount Everest?")
    assert (base.source, base.adapter) == ("student", None)
    near = router.answer("Who is the author of Dracula?", Switches(memory=False))
    assert (near.source, near.adapter) == ("student", "student-v1")


class CountingEmbedder(Embedder):
    """The session's MiniLM, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.id = inner.id
        self.dimension = inner.dimension
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += list(texts)
        return self.inner.embed(texts)


def test_a_turn_embeds_its_question_once(tmp_path: Path, embedder: Embedder) -> None:
    """Recall, adapter scope, the teacher's context and the remembered answer share one embedding of the question."""
    counting = CountingEmbedder(embedder)
    memory = Memory(path=tmp_path / "memory", embedder=counting)
    learned = memory.remember("Who wrote the novel Dracula?", "Bram Stoker", source="teacher:x")
    memory.mark_learned([learned.id], "v1")
    memory.remember("What is the population of Peru?", "About 34 million", source="teacher:x")
    teacher = RecordingTeacher("Lima")
    student = ScriptedStudent(generation("Quito", 0.1), generation("Paris", 0.9), generation("Bram Stoker", 0.9))
    router = Router(student, memory=memory, teacher=teacher, threshold=0.5, adapter="student-v1", context_items=3)

    counting.texts.clear()
    taught = router.answer("What is the capital of Peru?")  # recall misses, scope, context, remembered
    assert (taught.source, taught.adapter) == ("teacher", None)
    assert teacher.contexts[-1], "the teacher got the related remembered item as context"
    assert counting.texts == ["What is the capital of Peru?"]

    counting.texts.clear()
    hit = router.answer("what is the capital of peru")
    assert hit.source == "memory"
    assert counting.texts == ["what is the capital of peru"]

    counting.texts.clear()
    student_answer = router.answer("What is the capital of France?")  # recall misses, scope, the student answers
    assert student_answer.source == "student"
    assert counting.texts == ["What is the capital of France?"]

    counting.texts.clear()
    near = router.answer("Who is the author of Dracula?", Switches(memory=False))  # scope only
    assert (near.source, near.adapter) == ("student", "student-v1")
    assert counting.texts == ["Who is the author of Dracula?"]


def test_the_context_distance_and_question_limit_are_the_routers_settings(memory: Memory) -> None:
    memory.remember("Who wrote the novel Dracula?", "Bram Stoker", source="teacher:x")
    teacher = RecordingTeacher("Lima")
    student = ScriptedStudent(generation("?", 0.1), generation("?", 0.1))
    Router(student, memory=memory, teacher=teacher, context_distance=2.0).answer("What is the capital of Peru?")
    Router(student, memory=memory, teacher=teacher, context_distance=0.01).answer("What is the capital of Chile?")
    assert [len(c) for c in teacher.contexts] == [1, 0]  # Dracula is within 2.0; nothing is within 0.01
    with pytest.raises(InvalidRequestError, match="limit is 100"):
        Router(student, memory=memory, max_question_chars=100).answer("x" * 101)


def test_a_stack_routes_each_learned_item_to_the_adapter_that_learned_it(memory: Memory) -> None:
    """train_recipe "stack": the active adapter is served beside earlier ones, each answering what it learned."""
    first = memory.remember("Who wrote the novel Dracula?", "Bram Stoker", source="teacher:x")
    memory.mark_learned([first.id], "v2")
    second = memory.remember("What is the capital of Peru?", "Lima", source="teacher:x")
    memory.mark_learned([second.id], "v3")
    beside = {"v2": "student-v2"}
    assert adapter_for("Who is the author of Dracula?", "student-v3", memory, beside=beside) == "student-v2"
    assert adapter_for("What is Peru's capital?", "student-v3", memory, beside=beside) == "student-v3"
    assert adapter_for("How tall is Mount Everest?", "student-v3", memory, beside=beside) is None
    older = memory.remember("Who painted the Mona Lisa?", "Leonardo da Vinci", source="teacher:x")
    memory.mark_learned([older.id], "v1")  # taught before the stack began: the oldest beside was trained on it
    assert adapter_for("Who painted the Mona Lisa?", "student-v3", memory, beside=beside) == "student-v2"
    # with scope "all" the newest adapter answers everything but what one beside it learned
    assert (
        adapter_for("Who is the author of Dracula?", "student-v3", memory, scope="all", beside=beside) == "student-v2"
    )
    assert adapter_for("How tall is Mount Everest?", "student-v3", memory, scope="all", beside=beside) == "student-v3"
    assert adapter_for("How tall is Mount Everest?", "student-v3", None, scope="all", beside=beside) == "student-v3"
    student = ScriptedStudent(generation("Bram Stoker", 0.9), generation("Bram Stoker", 0.9))
    router = Router(student, memory=memory, teacher=RecordingTeacher(), threshold=0.5)
    router.use_adapter("student-v3", beside=beside)
    assert (router.adapter, router.beside) == ("student-v3", beside)
    hit = router.answer("Who wrote the novel Dracula?")  # a memory hit on v2's item: v2 answers it
    assert (hit.source, hit.adapter) == ("student", "student-v2")
    alone = router.answer("Who is the author of Dracula?", Switches(memory=False))
    assert (alone.source, alone.adapter) == ("student", "student-v2")
    router.use_adapter(None, beside=beside)  # the base model serves nothing beside it
    assert (router.adapter, router.beside) == (None, {})
