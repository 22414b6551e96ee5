"""Faults at the API, in-process: the teacher down, slow, or answering garbage (a real HTTP teacher), the student
failing while a stream is open, and the Chroma server holding the memory going down and coming back. Every
request ends in bounded time with a clear answer or error; nothing unusable is remembered. (The student's own
vLLM killed mid-request, and restarted: tests/test_vllm_faults.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.api.app import create_app
from mentee.server.clients.http import MenteeClient, MenteeClientError
from mentee.server.core.config import load_settings
from mentee.server.core.errors import StudentError
from mentee.server.service import Mentee
from mentee.server.student.client import Generation
from mentee.server.student.prompting import ChatMessage
from tests.teacher_server import TeacherHandler, running_teacher
from tests.test_api import KnowingStudent

UNKNOWN = "Who painted the ceiling of the Sistine Chapel?"  # the scripted student is unsure of it


@pytest.fixture
def teacher() -> Iterator[tuple[str, type[TeacherHandler]]]:
    with running_teacher(answers={UNKNOWN: "Michelangelo"}, delay_s=5.0) as served:
        yield served


def serve(tmp_path: Path, embedder: Embedder, teacher_url: str, **settings: Any) -> tuple[TestClient, Mentee]:
    values = dict(
        home=tmp_path,
        confidence_threshold=0.5,
        teacher_url=teacher_url,
        teacher_model="big-teacher",
        teacher_timeout_s=1.0,
        teacher_retries=0,
        **settings,
    )
    mentee = Mentee(
        load_settings(**values),
        student=KnowingStudent(),
        memory=Memory(path=tmp_path / "memory", embedder=embedder),
    ).start()
    return TestClient(create_app(mentee)), mentee


def ask(client: TestClient, question: str = UNKNOWN) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = client.post(
        "/v1/chat/completions", json={"model": "mentee", "messages": [{"role": "user", "content": question}]}
    )
    return response.status_code, response.json(), time.monotonic() - started


@pytest.mark.parametrize("mode", ["down", "slow", "error", "garbage", "wrong-json"])
def test_a_failing_teacher_leaves_the_students_flagged_answer_and_nothing_remembered(
    tmp_path: Path, embedder: Embedder, teacher: tuple[str, type[TeacherHandler]], mode: str
) -> None:
    url, handler = teacher
    if mode == "down":
        url = "http://127.0.0.1:9"  # nothing listens there
    else:
        handler.mode = mode
    client, mentee = serve(tmp_path, embedder, url)
    with client:
        # what the student knows is served whatever the teacher's state (and warms the embedder up)
        status, body, _ = ask(client, "What is the capital of France?")
        assert (status, body["mentee"]["source"]) == (200, "student")
        status, body, seconds = ask(client)
        assert status == 200, body
        info = body["mentee"]
        assert (info["source"], info["low_confidence"]) == ("student", True)
        assert any("teacher failed" in reason for reason in info["reasons"]), info["reasons"]
        assert seconds < 4  # the 1 s teacher timeout bounds it (the slow teacher takes 5 s)
        assert mentee.memory is not None and mentee.memory.count() == 0  # nothing unusable is kept
        # back to normal: the teacher answers and is remembered
        if mode != "down":
            handler.mode = "ok"
            status, body, _ = ask(client)
            assert (status, body["mentee"]["source"], body["choices"][0]["message"]["content"]) == (
                200,
                "teacher",
                "Michelangelo",
            )
    mentee.close()


def test_a_failing_teacher_in_strict_mode_is_a_clear_503(
    tmp_path: Path, embedder: Embedder, teacher: tuple[str, type[TeacherHandler]]
) -> None:
    url, handler = teacher
    handler.mode = "garbage"
    client, mentee = serve(tmp_path, embedder, url, strict=True)
    with client:
        status, body, _ = ask(client)
        assert status == 503
        assert "no source could answer" in body["error"]["message"]
    mentee.close()


class DyingStudent(KnowingStudent):
    """Its vLLM went away mid-request."""

    def generate(self, messages: Sequence[ChatMessage] | str, *, adapter: str | None = None) -> Generation:
        raise StudentError("the student (student) failed: Connection refused")


def test_a_stream_ends_with_an_error_event_not_a_hang(tmp_path: Path, embedder: Embedder) -> None:
    mentee = Mentee(
        load_settings(home=tmp_path, confidence_threshold=0.5),
        student=DyingStudent(),
        memory=Memory(path=tmp_path / "memory", embedder=embedder),
    ).start()
    with TestClient(create_app(mentee)) as client:
        oai = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
        stream = oai.chat.completions.create(
            model="mentee", messages=[{"role": "user", "content": "What is the capital of France?"}], stream=True
        )
        chunks = []
        with pytest.raises(openai.APIError, match="Connection refused") as raised:
            for chunk in stream:
                chunks.append(chunk)
        assert raised.value.body["code"] == "unavailable" and raised.value.body["status"] == 503
        assert len(chunks) == 1 and chunks[0].choices[0].delta.role == "assistant"  # it had opened
        # the UI's client says so in words
        with pytest.raises(MenteeClientError, match="the server answered 503: the student"):
            list(
                MenteeClient("http://testserver", http_client=client).chat_stream([{"role": "user", "content": "Hi?"}])
            )
        # and the same request unstreamed is a plain 503
        status, body, _ = ask(client, "What is the capital of France?")
        assert status == 503 and "the student" in body["error"]["message"]
    assert mentee.stats()["answers"]["failed"] == 3
    mentee.close()


@pytest.mark.chroma
def test_chroma_server_down_is_a_clear_503_and_it_recovers(
    tmp_path: Path, embedder: Embedder, teacher: tuple[str, type[TeacherHandler]]
) -> None:
    from tests.test_memory_chroma_server import ChromaServer

    url, _ = teacher
    chroma = ChromaServer(tmp_path / "chroma")
    try:
        settings = load_settings(
            home=tmp_path, confidence_threshold=0.5, teacher_url=url, teacher_model="t", chroma_url=chroma.url
        )
        mentee = Mentee(settings, student=KnowingStudent(), embedder=embedder).start()
        with TestClient(create_app(mentee)) as client:
            status, body, _ = ask(client)
            assert (status, body["mentee"]["source"]) == (200, "teacher")
            chroma.stop()
            status, body, seconds = ask(client)
            assert status == 503 and "memory" in body["error"]["message"].lower(), body
            assert seconds < 30
            health = client.get("/health")
            assert health.status_code == 503 and "memory" in " ".join(health.json()["problems"])
            chroma.restart()
            status, body, _ = ask(client)
            assert (status, body["mentee"]["source"]) == (200, "memory"), body  # what it was taught survived
            assert client.get("/health").status_code == 200
        mentee.close()
    finally:
        chroma.stop()
