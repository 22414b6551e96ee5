"""End to end with the real embedded student (Gemma 3 270M), as a user runs it from the README. `make demo` starts
everything itself; `mentee ask` and `calibrate` ask the session's shared Gemma vLLM (``MENTEE_STUDENT_URL``, as a
user with `mentee student serve` running would), so the suite pays for the real model's start-up twice, not four
times."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model

MENTEE = str(Path(sys.executable).parent / "mentee")


@pytest.fixture(scope="module")
def gemma_env(gemma_home: Path) -> Iterator[dict[str, str]]:
    """The environment of a user whose mentee home is the shared Gemma home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}
    yield {**env, "MENTEE_HOME": str(gemma_home)}


def readme_commands() -> list[str]:
    """The shell commands of the README's quickstart block (the first ```bash block)."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README has no ```bash quickstart block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_two_commands() -> None:
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_model_prepare_prints_the_folder_and_is_idempotent(gemma_env: dict[str, str]) -> None:
    first = subprocess.run(
        [MENTEE, "model", "prepare"], env=gemma_env, capture_output=True, text=True, timeout=900, check=True
    )
    folder = Path(first.stdout.strip())
    assert folder == Path(gemma_env["MENTEE_HOME"]) / "models" / "gemma-3-270m"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"
    assert config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == [1, 106]
    assert (folder / "tokenizer.json").is_file()
    again = subprocess.run(
        [MENTEE, "model", "prepare"], env=gemma_env, capture_output=True, text=True, timeout=120, check=True
    )
    assert again.stdout == first.stdout


def test_make_demo_serves_the_ui_with_the_student(gemma_env: dict[str, str], tmp_path: Path) -> None:
    """`make demo` starts the student, the API and the UI; a question asked in the UI gets the student's answer
    with its source; Ctrl-C stops all of it. A home without an anchor set has one when it is up: built at
    start-up from the packaged known questions, so the first round can learn."""
    import signal
    import time

    import httpx
    from gradio_client import Client

    from tests.served import free_port, stop_tree

    port = free_port()
    log_path = tmp_path / "make-demo.log"
    log = log_path.open("w")
    demo = subprocess.Popen(
        ["make", "demo", f"UI_ARGS=--no-open --port {port}"],
        cwd=REPO_ROOT,
        env=gemma_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            assert demo.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail("make demo did not serve the UI within 900 s")
        chat, _ = Client(url, verbose=False).predict("What is the capital of France?", True, True, api_name="/chat")
        reply = chat[-1]["content"]
        reply = " ".join(p.get("text", "") for p in reply) if isinstance(reply, list) else reply
        assert "Paris" in reply and "source: student" in reply
        anchors = json.loads((Path(gemma_env["MENTEE_HOME"]) / "anchors.json").read_text())
        assert sum(a["split"] == "check" for a in anchors["anchors"]) >= 20 and anchors["asked"] == 107
    finally:
        try:  # Ctrl-C in the terminal reaches the whole group
            alive = stop_tree(demo, lambda: os.killpg(demo.pid, signal.SIGINT), wait_s=120, grace_s=60)
        finally:
            log.close()
    assert not alive, f"make demo left processes behind: {alive}"


def test_ask_capital_of_france(gemma_env: dict[str, str], gemma_student_url: str) -> None:
    ask = next(c for c in readme_commands() if "mentee ask" in c)
    env = {**gemma_env, "MENTEE_STUDENT_URL": gemma_student_url}
    result = subprocess.run(ask, shell=True, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert "paris" in answer["answer"].lower()
    assert answer["source"] == "student"
    assert 0.0 < answer["confidence"] <= 1.0
    assert answer["adapter"] is None


EASY = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("What is the largest planet in the solar system?", ["Jupiter"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("How many days are there in a week?", ["seven", "7"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "Leonardo"]),
    ("What is the capital of Germany?", ["Berlin"]),
    ("What is the opposite of hot?", ["cold"]),
]


def test_calibrate_on_real_questions(gemma_env: dict[str, str], gemma_student_url: str, tmp_path: Path) -> None:
    # Easy questions the base student knows, and real NQ questions it mostly does not.
    nq = [json.loads(line) for line in (REPO_ROOT / "data" / "nq-open-dev.jsonl").read_text().splitlines()[:10]]
    rows = [{"question": q, "answers": a} for q, a in EASY] + nq
    qa_file = tmp_path / "qa.jsonl"
    qa_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = subprocess.run(
        [MENTEE, "calibrate", str(qa_file), "--json"],
        env={**gemma_env, "MENTEE_STUDENT_URL": gemma_student_url},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calibration = json.loads(result.stdout)
    assert calibration["questions"] == 20
    assert 5 <= calibration["correct"] < 20
    assert calibration["auroc"] >= 0.7  # confidence separates what it knows from what it does not
    assert (Path(gemma_env["MENTEE_HOME"]) / "calibration.json").is_file()
