"""The student's fast paths: input checks, parsing of vLLM's streamed log-probs, the confidence."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from mentee.server.core.config import QUESTION_MAX_CHARS, load_settings
from mentee.server.core.errors import InvalidRequestError, StudentError
from mentee.server.student.client import (
    Generation,
    StreamChunk,
    Student,
    TokenLogprob,
    _chunk_of,
    as_conversation,
)
from mentee.server.student.prompting import ChatMessage


def test_questions_are_checked() -> None:
    assert as_conversation("hi") == [ChatMessage("user", "hi")]
    with pytest.raises(InvalidRequestError, match="empty"):
        as_conversation("   ")
    with pytest.raises(InvalidRequestError, match="empty"):
        as_conversation([])
    with pytest.raises(InvalidRequestError, match="limit"):
        as_conversation("x" * (QUESTION_MAX_CHARS + 1))


def test_completion_chunk_parsing() -> None:
    choice = SimpleNamespace(
        text=" Paris",
        finish_reason=None,
        logprobs=SimpleNamespace(tokens=[" Paris"], token_logprobs=[-0.25], top_logprobs=[{" Paris": -0.25}]),
    )
    chunk = _chunk_of(choice, "completions")
    assert chunk == StreamChunk(" Paris", (TokenLogprob(" Paris", -0.25, {" Paris": -0.25}),), None)


def test_chat_chunk_parsing() -> None:
    item = SimpleNamespace(token="Rome", logprob=-1.0, top_logprobs=[SimpleNamespace(token="Rome", logprob=-1.0)])
    choice = SimpleNamespace(
        delta=SimpleNamespace(content="Rome"), finish_reason="stop", logprobs=SimpleNamespace(content=[item])
    )
    chunk = _chunk_of(choice, "chat")
    assert chunk.text == "Rome"
    assert chunk.tokens == (TokenLogprob("Rome", -1.0, {"Rome": -1.0}),)
    assert chunk.finish_reason == "stop"


def test_generation_from_chunks_and_confidence() -> None:
    chunks = [
        StreamChunk(" Par", (TokenLogprob(" Par", -0.1),)),
        StreamChunk("is", (TokenLogprob("is", -0.5),), finish_reason="stop"),
        StreamChunk("", prompt_tokens=40, completion_tokens=2),
    ]
    generation = Generation.from_chunks(chunks, model="student", seconds=1.5)
    assert generation.text == "Paris"
    assert generation.finish_reason == "stop"
    assert (generation.prompt_tokens, generation.completion_tokens) == (40, 2)
    assert generation.confidence == pytest.approx(math.exp(-0.5))
    assert generation.mean_logprob == pytest.approx(-0.3)
    assert not generation.truncated
    empty = Generation.from_chunks([StreamChunk("", finish_reason="stop")], model="student")
    assert empty.confidence == 0.0


def test_student_must_be_started() -> None:
    student = Student(load_settings(student_url="http://127.0.0.1:9"))
    with pytest.raises(StudentError, match="not started"):
        student.generate("hi")


def test_unreachable_student_url_is_a_clear_error() -> None:
    with pytest.raises(StudentError, match=r"cannot reach the vLLM server at http://127\.0\.0\.1:9"):
        Student(load_settings(student_url="http://127.0.0.1:9")).start()


def test_vllm_command_restricts_lora_and_keeps_the_last_adapter_slot_empty(tmp_path) -> None:
    from mentee.server.student.vllm_server import VLLMServer, vllm_build

    settings = load_settings(
        home=tmp_path, lora_target_modules=["q_proj", "down_proj"], vllm_max_loras=3, train_recipe="fresh"
    )
    command = VLLMServer(settings, "/models/student").command()
    at = command.index("--lora-target-modules")
    assert command[at + 1 : at + 3] == ["q_proj", "down_proj"]
    slots = command[command.index("--max-loras") + 1]
    assert slots == ("4" if vllm_build() == "cpu" else "3")  # CPU ops read a base-model token as the last slot
