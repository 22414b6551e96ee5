"""The UI's handlers (plain functions of a MenteeClient) against the real API in-process: a scripted student,
the real memory and a LangChain-model teacher (as tests/test_api.py). The UI in a browser: tests/test_ui.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from mentee.memory.embedder import Embedder
from mentee.server.clients.http import MenteeClient
from mentee.server.service import Mentee
from mentee.ui import app as ui
from tests.test_api import ADMIN_KEY, API_KEY, make_client


@pytest.fixture
def client(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MenteeClient, Mentee]]:
    http, mentee = make_client(
        tmp_path, embedder, teacher_answers=["Lima", "Herman Melville"], confidence_threshold=0.5,
        api_key=API_KEY, admin_key=ADMIN_KEY,
    )  # fmt: skip
    with http:
        yield MenteeClient("http://testserver", api_key=API_KEY, admin_key=ADMIN_KEY, http_client=http), mentee
    mentee.close()


def ask(client: MenteeClient, question: str, shown: list, conversation: list) -> tuple[list, list, dict]:
    *_, (chat, shown_now, sent, last, cleared) = ui.respond(client, question, shown, conversation)
    assert chat == shown_now and cleared == ""
    return shown_now, sent, last


def test_chat_shows_sources_and_sends_the_conversation(client: tuple[MenteeClient, Mentee]) -> None:
    mentee_client, _ = client
    shown, sent, last = ask(mentee_client, "What is the capital of Peru?", [], [])
    assert shown[-1]["content"].startswith("Lima\n\n`source: teacher`")
    assert "adapter: base" in shown[-1]["content"]
    assert sent == [
        {"role": "user", "content": "What is the capital of Peru?"},
        {"role": "assistant", "content": "Lima"},
    ]  # badges stay out of what is sent
    assert last["source"] == "teacher" and last["memory_id"]
    shown, sent, last = ask(mentee_client, "What is the capital of France?", shown, sent)
    assert "`source: student`" in shown[-1]["content"] and len(sent) == 4
    with pytest.raises(gr.Error, match="Type a question"):
        next(ui.respond(mentee_client, "  ", shown, sent))


def test_a_correction_is_remembered_with_human_trust(client: tuple[MenteeClient, Mentee]) -> None:
    mentee_client, mentee = client
    shown, sent, last = ask(mentee_client, "What is the capital of Peru?", [], [])
    chat, shown, sent, last, _ = ui.correct_last(mentee_client, "Lima, on the coast", shown, sent, last)
    assert chat[-1]["content"].startswith("Lima, on the coast") and sent[-1]["content"] == "Lima, on the coast"
    assert mentee.memory is not None
    record = mentee.memory.get(last["memory_id"])
    assert record is not None and (record.answer, record.trust) == ("Lima, on the coast", "human")
    with pytest.raises(gr.Error, match="right answer"):
        ui.correct_last(mentee_client, "", shown, sent, last)


def test_memory_tab_searches_filters_edits_and_deletes(client: tuple[MenteeClient, Mentee]) -> None:
    mentee_client, _ = client
    ask(mentee_client, "What is the capital of Peru?", [], [])
    ask(mentee_client, "Who wrote the novel Moby-Dick?", [], [])
    table = ui.search_memory(mentee_client, "capital city of peru", "", "any", "any")
    assert list(table.columns) == ui.MEMORY_COLUMNS and table.iloc[0]["answer"] == "Lima"
    assert len(ui.search_memory(mentee_client, "", "", "any", "not learned")) == 2
    assert ui.search_memory(mentee_client, "", "", "human", "any").empty
    record_id = str(table.iloc[0]["id"])
    assert "trust: human" in ui.save_item(mentee_client, record_id, "Lima (Peru)")
    assert len(ui.search_memory(mentee_client, "", "", "human", "any")) == 1
    assert "Deleted" in ui.delete_item(mentee_client, record_id)
    assert len(ui.search_memory(mentee_client, "", "", "any", "any")) == 1
    with pytest.raises(gr.Error, match="no remembered item"):
        ui.save_item(mentee_client, record_id, "x")


def test_learning_and_dashboard_tabs(client: tuple[MenteeClient, Mentee]) -> None:
    mentee_client, _ = client
    ask(mentee_client, "What is the capital of Peru?", [], [])
    ask(mentee_client, "What is the capital of Peru?", [], [])
    ask(mentee_client, "What is the capital of France?", [], [])
    table, versions = ui.adapters_table(mentee_client)
    assert table.empty and versions["choices"] == ["base"]
    with pytest.raises(gr.Error, match="503"):  # a scripted student cannot learn: the server says why
        ui.start_round(mentee_client)
    shares, calls, costs, figures, summary = ui.dashboard(mentee_client)
    assert set(shares["source"]) == {"memory", "student", "teacher"}
    assert shares.groupby("time")["share"].sum().round(2).tolist() == [1.0] * shares["time"].nunique()
    assert calls[calls["series"] == "teacher calls avoided"]["calls"].iloc[-1] == 2
    # The fake LangChain teacher reports no token usage, so its answers cost nothing and so does avoiding them.
    assert list(costs.columns) == ["time", "cost avoided"] and costs["cost avoided"].iloc[-1] == 0.0
    assert figures.empty and summary.startswith("3 answers: 2 without the teacher")


def test_progress_bar_and_errors_read_well() -> None:
    job = {
        "id": "round-1",
        "state": "running",
        "progress": {"phase": "training", "step": 12, "total_steps": 40, "loss": 0.5321, "eta_s": 80.4},
    }
    html = ui.progress_html(job)
    assert '<progress value="12" max="40"' in html and "loss 0.532" in html and "ETA 80 s" in html
    refused = {"id": "round-2", "state": "refused", "gate": {"reasons": ["did not learn: new-item recall 0.40"]}}
    assert "gate: did not learn" in ui.progress_html(refused)
    down = MenteeClient("http://127.0.0.1:9", admin_key="x")
    with pytest.raises(gr.Error, match=r"cannot reach the mentee server at http://127\.0\.0\.1:9"):
        ui.search_memory(down, "", "", "any", "any")
    assert "needs the admin key" in ui.dashboard_or_nothing(down)[4]
    assert isinstance(ui.build_demo(down), gr.Blocks)


def test_wrong_key_is_a_readable_error(client: tuple[MenteeClient, Mentee]) -> None:
    mentee_client, _ = client
    wrong = MenteeClient("http://testserver", api_key="nope", admin_key="nope", http_client=mentee_client._http)
    with pytest.raises(gr.Error, match="the server answered 403: this key may not use admin routes"):
        ui.search_memory(wrong, "", "", "any", "any")
    with pytest.raises(gr.Error, match="the server answered 401"):
        next(ui.respond(wrong, "What is the capital of Peru?", [], []))


def test_unsure_is_shown_as_unsure(tmp_path: Path, embedder: Embedder) -> None:
    """Below its threshold with no teacher able to answer, the chat says it is not sure, why and what would help,
    and shows the student's guess as a guess; the API still gives the guess with low_confidence."""
    http, mentee = make_client(tmp_path / "a", embedder, teacher_answers=["I don't know."], confidence_threshold=0.5)
    with http:
        client = MenteeClient("http://testserver", http_client=http)
        shown, sent, last = ask(client, "What is the capital of Ecuador?", [], [])
        reply = shown[-1]["content"]
        assert reply.startswith("**I'm not sure.** The student is not sure (confidence 0.05, below its threshold 0.50)")
        assert "the teacher does not know it either" in reply and "Its guess, likely wrong: _Quito_" in reply
        assert "low confidence" in reply and last["low_confidence"] and sent[-1]["content"] == "Quito"
        *_, (chat, *_) = ui.respond(client, "What is the capital of Chile?", [], [], True, False)
        off = chat[-1]["content"]
        assert "the teacher is switched off here" in off and "switch the teacher on" in off
    mentee.close()
    http, mentee = make_client(tmp_path / "b", embedder, teacher_answers=["I don't know."], strict=True)
    with http:  # strict: no answer at all (503), said as plainly, and the unanswered question is not kept
        client = MenteeClient("http://testserver", http_client=http)
        *_, (chat, shown, sent, last, _) = ui.respond(client, "What is the capital of Ecuador?", [], [])
        assert chat[-1]["content"].startswith("**I'm not sure.**") and "guess" not in chat[-1]["content"]
        assert sent == [] and last == {}
    mentee.close()


def test_examples_are_asked_as_questions_of_their_own(client: tuple[MenteeClient, Mentee]) -> None:
    """A clicked example starts a conversation of its own (what was shown stays); the orientation line says which
    teacher is connected and how to connect an LLM one."""
    mentee_client, _ = client
    shown, sent, _ = ask(mentee_client, "What is the capital of Peru?", [], [])
    *_, (chat, shown, sent, _, _) = ui.ask_example(mentee_client, ["Who wrote the novel Moby-Dick?"], shown)
    assert len(chat) == 4 and "Herman Melville" in chat[-1]["content"]
    assert sent == [
        {"role": "user", "content": "Who wrote the novel Moby-Dick?"},
        {"role": "assistant", "content": "Herman Melville"},
    ]
    about = mentee_client.about()
    assert ui.orientation(about).startswith("Teacher: `langchain:") and "paraphrase" in ui.orientation(about)
    reference = {"teacher": {"kind": "reference", "file": "nq-open-dev.jsonl", "questions": 8604}, "examples": []}
    assert "knows only the 8,604 questions of `nq-open-dev.jsonl`" in ui.orientation(reference)
    assert "MENTEE_TEACHER_URL" in ui.orientation(reference)
    assert ui.orientation({"teacher": {"kind": "none"}}).startswith("No teacher is connected")
    with ui.build_demo(mentee_client) as blocks:
        assert blocks is not None
