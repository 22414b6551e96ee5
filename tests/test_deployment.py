"""deploy/compose.yaml's services started as plain processes on loopback, as the compose file runs them: one
Chroma server, one student vLLM (`mentee student serve`, tiny model: the session's shared one, which conftest
starts that way), two API workers (`mentee serve`) sharing the memory, the student and the adapters folder.
What worker A's teacher taught, worker B serves from memory; after a round through worker A (trained
data-parallel in two accelerate processes), both serve the new adapter."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from mentee.server.learning.dataset import Anchor, AnchorSet, save_anchors
from mentee.server.serving.calibration import choose_threshold, save_calibration
from tests.served import (
    ADMIN_KEY,
    API_KEY,
    free_port,
    link_vllm_caches,
    mentee_environment,
    mentee_process,
    tiny_student_settings,
)
from tests.teacher_server import running_teacher
from tests.test_memory_chroma_server import ChromaServer

pytestmark = [pytest.mark.vllm, pytest.mark.chroma, pytest.mark.train]

TAUGHT = {  # words the tiny tokenizer knows, so each answer is a few tokens (as in test_learning_round.py)
    "What is the capital of France?": "Paris",
    "Who wrote the play Hamlet?": "William Shakespeare",
    "How many legs does a spider have?": "Eight",
}

# Settings under which a round on the random tiny student learns its three facts (test_learning_round.py's, with
# twice its epochs: at 40, greedy recall sits on the gate's edge, 3/3 with one process and 2/3 with two on the same
# data; at 80, 3/3 with two).
LEARNING = dict(
    MENTEE_LORA_RANK="8",
    MENTEE_LORA_ALPHA="16",
    MENTEE_TRAIN_EPOCHS="80",
    MENTEE_TRAIN_LEARNING_RATE="0.01",
    MENTEE_TRAIN_BATCH_SIZE="8",
    MENTEE_MAX_TOKENS="6",
    MENTEE_GATE_MAX_ANCHOR_DROP="1.0",  # a random model's own answers are noise; the gate's rules have unit tests
    MENTEE_RECALIBRATE_AFTER_ROUND="false",
)


@dataclass
class Worker:
    url: str
    client: openai.OpenAI
    admin: httpx.Client

    def ask(self, question: str, **switches: bool) -> dict:
        extra = {"extra_body": {"mentee": switches}} if switches else {}
        reply = self.client.chat.completions.create(
            model="mentee", messages=[{"role": "user", "content": question}], **extra
        )
        return {"answer": reply.choices[0].message.content, **reply.model_extra["mentee"]}


def prepare_home(home: Path) -> None:
    """The shared home's anchors and calibration, as `mentee anchors build` and `mentee calibrate` leave them."""
    facts = [
        (f"{w} is the {n}?", f"the {a} {n}") for w in ("Who", "Where") for n, a in (("fox", "brown"), ("dog", "lazy"))
    ]
    facts += [(f"Why is the {n} {a}?", f"the {n}") for n, a in (("fox", "quick"), ("dog", "lazy"))]
    anchors = tuple(Anchor(f"a{i}", q, (a,), a, "check" if i % 2 else "replay") for i, (q, a) in enumerate(facts))
    save_anchors(home, AnchorSet(anchors, source="test", asked=len(facts)))
    qa_file = home / "calibration-qa.jsonl"
    qa_file.write_text("".join(json.dumps({"question": q, "answers": [a]}) + "\n" for q, a in TAUGHT.items()))
    save_calibration(home, choose_threshold([(0.9, True), (0.5, True), (0.1, False)], source=str(qa_file)))


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, session_home: Path, tiny_student_url: str
) -> Iterator[list[Worker]]:
    root = tmp_path_factory.mktemp("deploy")
    shared_home = root / "shared"
    link_vllm_caches(shared_home, session_home)
    prepare_home(shared_home)
    with ExitStack() as stack:
        chroma = ChromaServer(root / "chroma")
        stack.callback(chroma.stop)
        teacher_url, _ = stack.enter_context(running_teacher(answers=TAUGHT, rewrites={}, delay_s=0.0))
        settings = {**tiny_student_settings(tiny_model_dir, teacher_url), **LEARNING}
        workers = []
        for name in ("a", "b"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            # A round trains data-parallel in two gloo CPU processes (accelerate launch), gated through vLLM like
            # test_learning_round.py's one-process round on the same facts.
            environment = mentee_environment(
                shared_home,
                **settings,
                MENTEE_STUDENT_URL=tiny_student_url,
                MENTEE_CHROMA_URL=chroma.url,
                MENTEE_TRAIN_PROCESSES="2",
            )
            serve = ["serve", "--port", str(port)]
            stack.enter_context(mentee_process(serve, environment, root / f"worker-{name}.log", health_url=url))
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
            admin = stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
            )
            workers.append(Worker(url, client, admin))
        yield workers


def test_workers_share_the_memory_and_follow_one_adapter(deployment: list[Worker]) -> None:
    a, b = deployment
    for question, answer in TAUGHT.items():
        taught = a.ask(question)
        assert (taught["source"], taught["answer"]) == ("teacher", answer)
        remembered = b.ask(question)
        assert (remembered["source"], remembered["answer"]) == ("memory", answer)
        assert remembered["memory_id"] == taught["memory_id"]
    assert b.admin.get("/v1/mentee/stats").json()["memory"]["teacher"] == len(TAUGHT)

    job = a.admin.post("/v1/mentee/train").json()
    deadline = time.monotonic() + 900
    while not a.admin.get(f"/v1/mentee/train/{job['id']}").json()["progress"]:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    refused = b.admin.post("/v1/mentee/train")  # one round at a time across the workers (the adapters' lock)
    assert refused.status_code == 409 and "another process" in refused.json()["error"]["message"], refused.text
    while (state := a.admin.get(f"/v1/mentee/train/{job['id']}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(3)
    assert state["state"] == "passed", json.dumps(
        {k: state[k] for k in ("gate", "training", "error")}
    )  # the verdict of test_learning_round.py's one-process round
    assert state["training"]["processes"] == 2 and state["gate"]["new_recall"] >= 0.9, state
    version = state["adapter"]
    for worker in (a, b):
        assert worker.admin.get("/v1/mentee/adapters").json()["active"] == version
        time.sleep(1.1)  # a worker checks the shared active pointer at most once a second
        alone = worker.ask("What is the capital of France?", memory=False, teacher=False)
        assert alone["adapter"] == f"student-{version}", (worker.url, alone)
