"""The LangChain side: ``ChatMentee`` passes langchain-tests' standard suites (unit here; integration against
`mentee serve` with the tiny student), ``LocalChatMentee`` learns in-process from a LangChain teacher, and the
memory is a retriever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server import ChatMentee, LocalChatMentee, MemoryRetriever, load_settings
from tests.served import API_KEY, Served, serving

ANSWERS = {"What is the capital of Peru?": "Lima", "Who wrote the novel Moby-Dick?": "Herman Melville"}


class TestChatMenteeUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatMentee]:
        return ChatMentee

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"base_url": "http://127.0.0.1:9", "model": "mentee"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        env = {"MENTEE_URL": "http://mentee.example:8080", "MENTEE_API_KEY": "sk-from-env"}
        return env, {}, {"base_url": "http://mentee.example:8080", "api_key": "sk-from-env"}


def test_switches_and_messages_become_the_request() -> None:
    chat = ChatMentee(base_url="http://127.0.0.1:9", memory=False, stop=["\n"])
    request = chat._request([HumanMessage("hi", name="ann")], None, {"teacher": False, "max_tokens": 5})
    assert request["extra_body"] == {"mentee": {"memory": False, "teacher": False, "learn": True}}
    assert request["messages"] == [{"role": "user", "content": "hi"}]
    assert (request["max_tokens"], request["stop"], request["model"]) == (5, ["\n"], "mentee")
    with pytest.raises(ValueError, match="got a tool message"):
        chat._request([ToolMessage("42", tool_call_id="x")], None, {})


@pytest.fixture(scope="module")
def langchain_server(
    tiny_model_dir: Path, session_home: Path, tiny_student_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("langchain-serve-home")
    with serving(home, tiny_model_dir, session_home, answers=ANSWERS, student_url=tiny_student_url) as served:
        TestChatMenteeIntegration.url = served.url
        yield served


@pytest.mark.vllm
@pytest.mark.usefixtures("langchain_server")
class TestChatMenteeIntegration(ChatModelIntegrationTests):
    url = ""  # set by the langchain_server fixture

    @property
    def chat_model_class(self) -> type[ChatMentee]:
        return ChatMentee

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"base_url": self.url, "model": "mentee", "api_key": API_KEY}  # the server's chat key, not "test"

    def test_mentee_metadata_and_switches(self, model: ChatMentee) -> None:
        first = model.invoke("What is the capital of Peru?")
        assert first.content == "Lima" and first.response_metadata["mentee"]["source"] == "teacher"
        again = model.invoke("What is the capital of Peru?")
        assert again.response_metadata["mentee"]["source"] == "memory"
        assert again.usage_metadata is not None
        streamed = None
        for chunk in model.stream("What is the capital of Peru?", memory=False, teacher=False):
            streamed = chunk if streamed is None else streamed + chunk
        assert streamed is not None and streamed.response_metadata["mentee"]["source"] == "student"
        batch = model.batch(["Who wrote the novel Moby-Dick?", "What is the capital of Peru?"])
        assert [m.content for m in batch] == ["Herman Melville", "Lima"]


def test_memory_retriever_returns_remembered_items(tmp_path: Path, embedder: Embedder) -> None:
    settings = load_settings(home=tmp_path)
    with Memory.from_settings(settings, embedder=embedder) as memory:
        memory.remember("Who wrote the novel Moby-Dick?", "Herman Melville", source="teacher:test")
        memory.remember("What is the capital of Peru?", "Lima", source="teacher:test")
        documents = MemoryRetriever(memory=memory, k=2).invoke("who is the author of moby dick")
        assert documents[0].page_content == "Q: Who wrote the novel Moby-Dick?\nA: Herman Melville"
        assert documents[0].metadata["answer"] == "Herman Melville" and documents[0].metadata["trust"] == "teacher"
        assert documents[0].metadata["distance"] < documents[1].metadata["distance"]
        assert MemoryRetriever(memory=memory, k=2, max_distance=0.3).invoke("who is the author of moby dick") == [
            documents[0]
        ]


@pytest.mark.vllm
def test_local_chat_mentee_learns_from_a_langchain_teacher(
    tmp_path: Path, tiny_model_dir: Path, tiny_student_url: str
) -> None:
    settings = load_settings(
        home=tmp_path,
        student_model=str(tiny_model_dir),
        student_url=tiny_student_url,  # a Mentee starting its own vLLM: test_learning_round's second worker
        max_tokens=8,
        confidence_threshold=0.999,
    )
    with LocalChatMentee(settings=settings, teacher_model=FakeListChatModel(responses=["Lima"])) as chat:
        first = chat.invoke("What is the capital of Peru?")
        assert first.content == "Lima" and first.response_metadata["mentee"]["source"] == "teacher"
        again = chat.invoke("what's the capital city of Peru?")
        assert again.content == "Lima" and again.response_metadata["mentee"]["source"] == "memory"
        alone = chat.invoke("What is the capital of Peru?", memory=False, teacher=False)
        assert alone.response_metadata["mentee"]["source"] == "student"
