"""The API with the official ``openai`` client and plain HTTP, in-process (FastAPI's test client), over a scripted
student, the real memory and a real LangChain-model teacher. The same against vLLM: test_api_server.py."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.api.app import create_app
from mentee.server.core.config import load_settings
from mentee.server.service import Mentee
from mentee.server.student.client import Generation, TokenLogprob, as_conversation
from mentee.server.student.prompting import ChatMessage
from mentee.server.teachers import GuardedTeacher, TeacherLimits
from mentee.server.teachers.langchain_model import LangChainTeacher

KNOWN = {"What is the capital of France?": "Paris"}
API_KEY, ADMIN_KEY = "sk-chat-test", "sk-admin-test"


class KnowingStudent:
    """Sure of what it knows, unsure (and wrong) otherwise."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def generate(self, messages: Sequence[ChatMessage] | str, *, adapter: str | None = None) -> Generation:
        question = as_conversation(messages)[-1].content
        self.asked.append(question)
        text, probability = (KNOWN[question], 0.95) if question in KNOWN else ("Quito", 0.05)
        return Generation(
            text=text,
            tokens=(TokenLogprob(text, math.log(probability)),),
            finish_reason="stop",
            model="student",
            prompt_tokens=12,
            completion_tokens=1,
        )


def make_client(
    tmp_path: Path, embedder: Embedder, *, teacher_answers: Sequence[str] = ("Lima",), **settings: Any
) -> tuple[TestClient, Mentee]:
    chat = FakeListChatModel(responses=list(teacher_answers))
    teacher = GuardedTeacher(LangChainTeacher(chat), TeacherLimits(price_in_per_mtok=1.0, price_out_per_mtok=2.0))
    mentee = Mentee(
        load_settings(**settings),
        student=KnowingStudent(),
        memory=Memory(path=tmp_path / "memory", embedder=embedder),
        teacher=teacher,
    ).start()
    return TestClient(create_app(mentee)), mentee


@pytest.fixture
def served(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[TestClient, Mentee]]:
    client, mentee = make_client(tmp_path, embedder, confidence_threshold=0.5)
    with client:
        yield client, mentee
    mentee.close()


def openai_client(client: TestClient, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


def test_teacher_then_memory_through_the_openai_client(served: tuple[TestClient, Mentee]) -> None:
    client, mentee = served
    oai = openai_client(client)
    first = oai.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "Capital of Peru?"}])
    assert first.choices[0].message.content == "Lima"
    info = first.model_extra["mentee"]
    assert info["source"] == "teacher"
    assert info["threshold"] == 0.5
    assert info["confidence"] == pytest.approx(0.05)
    assert info["memory_id"]
    again = oai.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "capital of peru?"}])
    assert again.model_extra["mentee"]["source"] == "memory"
    assert again.model_extra["mentee"]["memory_id"] == info["memory_id"]
    known = oai.chat.completions.create(
        model="mentee", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert (known.choices[0].message.content, known.model_extra["mentee"]["source"]) == ("Paris", "student")
    assert known.usage is not None and known.usage.prompt_tokens == 12
    stats = mentee.stats()
    assert stats["answers"] == {
        "memory": 1,
        "student": 1,
        "teacher": 1,
        "total": 3,
        "low_confidence": 0,
        "failed": 0,
    }
    assert stats["teacher_calls_avoided"] == 2
    assert stats["teacher"]["calls"] == 1
    assert stats["cost_avoided"] == pytest.approx(2 * stats["teacher"]["cost"])


def test_streaming_agrees_with_non_streaming(served: tuple[TestClient, Mentee]) -> None:
    client, _ = served
    oai = openai_client(client)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    whole = oai.chat.completions.create(model="mentee", messages=question)
    chunks = list(
        oai.chat.completions.create(
            model="mentee", messages=question, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["mentee"]["source"] == whole.model_extra["mentee"]["source"] == "student"
    assert final.usage is not None and final.usage.total_tokens == whole.usage.total_tokens
    assert all("mentee" not in (c.model_extra or {}) for c in chunks[:-1])


def test_switches_as_extra_body(served: tuple[TestClient, Mentee]) -> None:
    client, mentee = served
    oai = openai_client(client)
    alone = oai.chat.completions.create(
        model="mentee",
        messages=[{"role": "user", "content": "Capital of Peru?"}],
        extra_body={"mentee": {"memory": False, "teacher": False}},
    )
    assert alone.choices[0].message.content == "Quito"
    assert alone.model_extra["mentee"]["source"] == "student"
    assert alone.model_extra["mentee"]["low_confidence"] is True
    not_learned = oai.chat.completions.create(
        model="mentee",
        messages=[{"role": "user", "content": "Capital of Peru?"}],
        extra_body={"mentee": {"learn": False}},
    )
    assert not_learned.model_extra["mentee"]["source"] == "teacher"
    assert mentee.memory is not None and mentee.memory.count() == 0
    with pytest.raises(openai.UnprocessableEntityError, match=r"mentee\.colour"):
        oai.chat.completions.create(
            model="mentee", messages=[{"role": "user", "content": "x?"}], extra_body={"mentee": {"colour": True}}
        )


def test_models_health_and_metrics(served: tuple[TestClient, Mentee]) -> None:
    client, _ = served
    oai = openai_client(client)
    assert [m.id for m in oai.models.list()] == ["mentee"]
    with pytest.raises(openai.NotFoundError, match="gpt-4"):
        oai.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert client.get("/health").json()["status"] == "ok"
    oai.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "Capital of Peru?"}])
    metrics = client.get("/metrics").text
    assert 'mentee_answers_total{low_confidence="false",source="teacher"} 1.0' in metrics
    assert 'mentee_teacher_calls_total{outcome="answer"} 1.0' in metrics
    assert "mentee_memory_items 1.0" in metrics
    assert 'mentee_answer_seconds_count{source="teacher"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "mentee", "messages": []}, 422, "messages"),
        ({"model": "mentee"}, 422, "messages: Field required"),
        ({"model": "mentee", "messages": [{"role": "wizard", "content": "hi"}]}, 422, "role"),
        ({"model": "mentee", "messages": [{"role": "user", "content": "  "}]}, 400, "empty"),
        ({"model": "mentee", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
        ({"model": "mentee", "messages": [{"role": "user", "content": "x" * 9000}]}, 413, "limit is 8000"),
        ({"model": "mentee", "messages": [{"role": "user", "content": "hi"}] * 65}, 413, "limit is 64"),
        ({"model": "mentee", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n must be 1"),
        ({"model": "mentee", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 422, "content"),
    ],
)
def test_bad_requests_get_clear_4xx(
    served: tuple[TestClient, Mentee], body: dict[str, Any], status: int, message: str
) -> None:
    client, _ = served
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_invalid_json_and_huge_bodies(served: tuple[TestClient, Mentee]) -> None:
    client, _ = served
    broken = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert "JSON" in broken.json()["error"]["message"]
    huge = client.post("/v1/chat/completions", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413
    json_header = {"content-type": "application/json"}
    binary = client.post("/v1/chat/completions", content=bytes(range(256)), headers=json_header)
    assert binary.status_code == 422


def test_keys(tmp_path: Path, embedder: Embedder) -> None:
    client, mentee = make_client(tmp_path, embedder, api_key=API_KEY, admin_key=ADMIN_KEY)
    with client:
        question = {"model": "mentee", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        assert client.post("/v1/chat/completions", json=question).status_code == 401
        wrong = client.post("/v1/chat/completions", json=question, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "nope" not in wrong.text
        for key in (API_KEY, ADMIN_KEY):
            ok = client.post("/v1/chat/completions", json=question, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert client.get("/v1/mentee/stats").status_code == 401
        assert client.get("/v1/mentee/stats", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 403
        assert client.get("/v1/mentee/stats", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai_client(client, "wrong").models.list()
    mentee.close()


def test_admin_memory_routes(served: tuple[TestClient, Mentee]) -> None:
    client, _ = served
    oai = openai_client(client)
    taught = oai.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "Capital of Peru?"}])
    memory_id = taught.model_extra["mentee"]["memory_id"]
    found = client.get("/v1/mentee/memory", params={"q": "peru capital"}).json()["data"]
    assert found[0]["id"] == memory_id and found[0]["answer"] == "Lima"
    assert client.get(f"/v1/mentee/memory/{memory_id}").json()["question"] == "Capital of Peru?"
    corrected = client.patch(f"/v1/mentee/memory/{memory_id}", json={"answer": "Lima, Peru", "by": "ana"}).json()
    assert (corrected["answer"], corrected["trust"], corrected["source"]) == ("Lima, Peru", "human", "person:ana")
    again = oai.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "Capital of Peru?"}])
    assert again.choices[0].message.content == "Lima, Peru"
    added = client.post("/v1/mentee/memory", json={"question": "Who wrote Hamlet?", "answer": "Shakespeare"})
    assert added.status_code == 201 and added.json()["trust"] == "human"
    assert len(client.get("/v1/mentee/memory", params={"trust": "human"}).json()["data"]) == 2
    assert client.delete(f"/v1/mentee/memory/{memory_id}").status_code == 204
    assert client.delete(f"/v1/mentee/memory/{memory_id}").status_code == 404
    assert client.get(f"/v1/mentee/memory/{memory_id}").status_code == 404
    assert client.post("/v1/mentee/memory", json={"question": "", "answer": "x"}).status_code == 422
    stats = client.get("/v1/mentee/stats").json()
    assert stats["memory"]["human"] == 1 and stats["answers"]["teacher"] == 1
    calibration = client.get("/v1/mentee/calibration").json()
    assert calibration["origin"] == "configured" and calibration["threshold"] == 0.5


def test_strict_mode_gives_503_when_no_source_can_answer(tmp_path: Path, embedder: Embedder) -> None:
    client, mentee = make_client(tmp_path, embedder, teacher_answers=["I don't know."], strict=True)
    with client:
        response = client.post(
            "/v1/chat/completions", json={"model": "mentee", "messages": [{"role": "user", "content": "Peru?"}]}
        )
        assert response.status_code == 503
        assert "no source could answer" in response.json()["error"]["message"]
        assert mentee.stats()["answers"]["failed"] == 1
    mentee.close()


def test_uncalibrated_threshold_and_saved_calibration(tmp_path: Path, embedder: Embedder) -> None:
    from mentee.server.serving.calibration import choose_threshold, save_calibration

    _, mentee = make_client(tmp_path, embedder)
    assert mentee.calibration_state()["origin"].startswith("default")
    mentee.close()
    save_calibration(mentee.settings.home, choose_threshold([(0.9, True), (0.3, True), (0.2, False)]))
    _, mentee = make_client(tmp_path, embedder)
    assert (mentee.threshold, mentee.calibration_state()["origin"]) == (0.3, "calibrated")
    mentee.close()


def test_learning_routes_without_a_vllm_student(served: tuple[TestClient, Mentee]) -> None:
    client, _ = served
    refused = client.post("/v1/mentee/train")
    assert refused.status_code == 503 and "learning needs" in refused.json()["error"]["message"]
    assert client.get("/v1/mentee/adapters").json() == {"active": None, "data": [], "history": []}
    assert client.get("/v1/mentee/train/round-x").status_code == 404
    assert client.post("/v1/mentee/adapters/v1/activate").status_code == 503


def test_stats_sum_every_worker_sharing_the_home_and_outlive_a_restart(tmp_path: Path, embedder: Embedder) -> None:
    """Two API workers on one home (as in deploy/compose.yaml): each one's /v1/mentee/stats counts both, and the
    counts of a worker that stopped stay in the deployment's figures."""
    first, worker_a = make_client(tmp_path / "a", embedder, teacher_answers=["Lima"], home=tmp_path / "home")
    second, worker_b = make_client(tmp_path / "b", embedder, teacher_answers=["Quito"], home=tmp_path / "home")
    question = {"model": "mentee", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    with first, second:
        assert first.post("/v1/chat/completions", json=question).json()["mentee"]["source"] == "student"
        other = {"model": "mentee", "messages": [{"role": "user", "content": "Capital of Ecuador?"}]}
        assert second.post("/v1/chat/completions", json=other).json()["mentee"]["source"] == "teacher"
        assert second.post("/v1/chat/completions", json=question).json()["mentee"]["source"] == "student"
        worker_b.counts.share(force=True)  # as it does every 2 s while it answers
        seen_by_a = first.get("/v1/mentee/stats").json()
        assert seen_by_a["workers"] == 2
        assert seen_by_a["per_worker"] == ["teacher", "cost_avoided"]  # the rest is the deployment's
        assert {k: seen_by_a["answers"][k] for k in ("memory", "student", "teacher", "total")} == {
            "memory": 0,
            "student": 2,
            "teacher": 1,
            "total": 3,
        }
        assert sum(bucket["student"] + bucket["teacher"] for bucket in seen_by_a["timeline"]) == 3
        assert seen_by_a["teacher_calls_avoided"] == 2
    worker_a.close()
    worker_b.close()
    third, worker_c = make_client(tmp_path / "c", embedder, home=tmp_path / "home")
    with third:
        after_restart = third.get("/v1/mentee/stats").json()
        assert (after_restart["workers"], after_restart["answers"]["total"]) == (3, 3)
    worker_c.close()


def test_a_chat_turn_embeds_its_question_once(tmp_path: Path, embedder: Embedder) -> None:
    """Through the API and the service, a turn that goes to the teacher and is remembered embeds its question once
    (recall, adapter scope, teacher context and the remembered record share it)."""
    from tests.test_router import CountingEmbedder

    counting = CountingEmbedder(embedder)
    client, mentee = make_client(tmp_path, counting, confidence_threshold=0.5)
    with client:
        body = {"model": "mentee", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}
        counting.texts.clear()
        assert client.post("/v1/chat/completions", json=body).json()["mentee"]["source"] == "teacher"
        assert counting.texts == ["What is the capital of Peru?"]
        counting.texts.clear()
        assert client.post("/v1/chat/completions", json=body).json()["mentee"]["source"] == "memory"
        assert counting.texts == ["What is the capital of Peru?"]
    mentee.close()


def test_admin_routes_say_503_with_the_reason_when_the_memory_fails(
    served: tuple[TestClient, Mentee], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Chroma outage on the admin routes is what it is on the chat route: a 503 naming the memory, not a 500."""
    client, mentee = served
    assert mentee.memory is not None
    record = mentee.memory.remember("Who wrote Dracula?", "Bram Stoker", source="t")

    def chroma_down(*args: Any, **kwargs: Any) -> Any:
        from mentee.memory.store import MemoryStoreError

        raise MemoryStoreError("the memory's Chroma store (test) failed: connection refused")

    monkeypatch.setattr(mentee.memory, "_call", chroma_down)
    for method, path, body in [
        ("GET", "/v1/mentee/memory", None),
        ("GET", "/v1/mentee/memory?q=Dracula", None),
        ("GET", f"/v1/mentee/memory/{record.id}", None),
        ("POST", "/v1/mentee/memory", {"question": "Who wrote Emma?", "answer": "Jane Austen"}),
        ("PATCH", f"/v1/mentee/memory/{record.id}", {"answer": "Stoker"}),
        ("DELETE", f"/v1/mentee/memory/{record.id}", None),
        ("GET", "/v1/mentee/stats", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 503, (method, path, response.text)
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("service_unavailable", "unavailable")
        assert "connection refused" in error["message"]


def test_one_question_length_limit_from_one_setting(tmp_path: Path, embedder: Embedder) -> None:
    """question_max_chars holds for the chat route, the memory's search and a person's correction alike."""
    settings = load_settings(home=tmp_path / "home", confidence_threshold=0.5, question_max_chars=200)
    teacher = GuardedTeacher(LangChainTeacher(FakeListChatModel(responses=["Lima"])))
    memory = Memory.from_settings(settings, embedder=embedder)  # as `mentee serve` builds it
    mentee = Mentee(settings, student=KnowingStudent(), memory=memory, teacher=teacher).start()
    client = TestClient(create_app(mentee))
    with client:
        long = "What is " + "x" * 200 + "?"
        chat = client.post(
            "/v1/chat/completions", json={"model": "mentee", "messages": [{"role": "user", "content": long}]}
        )
        assert chat.status_code == 413 and "question_max_chars" in chat.json()["error"]["message"]
        assert client.get("/v1/mentee/memory", params={"q": long}).status_code == 400
        correction = client.post("/v1/mentee/memory", json={"question": long, "answer": "x"})
        assert correction.status_code == 400 and "limit" in correction.json()["error"]["message"]
        ok = "What is the capital of Peru, the country in South America, on the Pacific coast?"
        body = {"model": "mentee", "messages": [{"role": "user", "content": ok}]}
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    mentee.close()


def test_a_second_round_gets_409_with_the_running_rounds_id(served: tuple[TestClient, Mentee]) -> None:
    from mentee.server.learning.runner import RoundRunner
    from tests.test_learning_parts import SlowLearner

    client, mentee = served
    learner = SlowLearner()
    assert mentee.memory is not None
    mentee._rounds = RoundRunner(lambda: learner, mentee.settings, mentee.memory)  # type: ignore[arg-type,return-value]
    try:
        first = mentee.rounds.submit("test")
        refused = client.post("/v1/mentee/train")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "round_running"
        assert refused.json()["error"]["round_id"] == first.id
    finally:
        learner.release.set()


def test_about_says_which_teacher_and_offers_examples(served: tuple[TestClient, Mentee]) -> None:
    """What the chat shows a newcomer first: the teacher's kind and name (never its address), the student, and
    example questions with a paraphrase each (the packaged ones: an LLM teacher can answer them)."""
    client, _ = served
    about = client.get("/v1/mentee/about").json()
    assert about["teacher"] == {"kind": "langchain", "name": about["teacher"]["name"]}
    assert about["student"] == {"model": "gemma-3-270m (embedded)", "embedded": True, "adapter": None}
    assert about["threshold"] == 0.5 and about["calibrated"] is False
    assert 3 <= len(about["examples"]) <= 8 and all(e["question"] and e["paraphrase"] for e in about["examples"])


def test_the_guided_run_keeps_to_its_own_memory_behind_the_admin_key(tmp_path: Path, embedder: Embedder) -> None:
    """A guided-run turn needs the admin key, remembers into the guided memory only, and its reset forgets only
    that; without a vLLM student its round is unavailable (503), as any round."""
    http, mentee = make_client(tmp_path, embedder, confidence_threshold=0.5, api_key=API_KEY, admin_key=ADMIN_KEY)
    question = {"model": "mentee", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}
    guided = {**question, "mentee": {"guided": True}}
    chat_key, admin_key = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}
    with http:
        refused = http.post("/v1/chat/completions", json=guided, headers=chat_key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"
        answered = http.post("/v1/chat/completions", json=guided, headers=admin_key).json()
        assert answered["mentee"]["source"] == "teacher"
        assert mentee.memory is not None and mentee.memory.count() == 0  # the users' memory: untouched
        assert mentee.guided_memory.count() == 1
        again = http.post("/v1/chat/completions", json=guided, headers=admin_key).json()
        assert again["mentee"]["source"] == "memory"
        users = http.post("/v1/chat/completions", json=question, headers=chat_key).json()
        assert users["mentee"]["source"] == "teacher"  # the guided item does not answer a user
        assert http.delete("/v1/mentee/guided/memory", headers=admin_key).json() == {"deleted": 1}
        assert mentee.guided_memory.count() == 0 and mentee.memory.count() == 1
        train = http.post("/v1/mentee/train", json={"guided": True}, headers=admin_key)
        assert train.status_code == 503 and "vLLM student" in train.json()["error"]["message"]
        bad = http.post("/v1/mentee/train", json={"guided": True, "rounds": 2}, headers=admin_key)
        assert bad.status_code == 422 and "rounds" in bad.text
    mentee.close()
