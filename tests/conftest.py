"""Shared fixtures: an isolated mentee home, the tiny random Gemma-3 student (built once per session), and the
students' vLLM servers that a session starts once and shares (one per model), with a per-file time table at the
end of the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.tiny_model import build_random_lora, build_tiny_gemma

if TYPE_CHECKING:
    from mentee.server.student.client import Student

REPO_ROOT = Path(__file__).resolve().parent.parent
_SHARED_STUDENTS = pytest.StashKey[list["Student"]]()  # a client of each shared vLLM, for cleaning it up


def pytest_configure(config: pytest.Config) -> None:
    # torch and Gradio make folders in /tmp; keep them (and their subprocesses') inside a temp dir we remove.
    folder = _torch_cache_folder()
    config.stash[_TORCH_CACHE] = folder
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(folder, "gradio")  # Gradio's files (uploads, edit history) too
    config.stash[_SHARED_STUDENTS] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Minutes per test file, setup and teardown included (a module's vLLM starts in a fixture's setup), slowest
    first: where the suite's budget goes. The reports are the ones pytest's own --durations reads."""
    seconds: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                file = report.nodeid.split("::", 1)[0]
                seconds[file] = seconds.get(file, 0.0) + report.duration
    if not seconds:
        return
    terminalreporter.section("minutes per test file")
    for file, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{spent / 60:7.2f}  {file}")
    terminalreporter.write_line(f"{sum(seconds.values()) / 60:7.2f}  in all")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_TORCH_CACHE, ""), ignore_errors=True)


_TORCH_CACHE = pytest.StashKey[str]()


@lru_cache(maxsize=1)
def _torch_cache_folder() -> str:
    """The session's temp folder for torch's, Gradio's and the embedder's caches (removed at the end)."""
    return tempfile.mkdtemp(prefix="mentee-tests-torch-")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own mentee home and no MENTEE_* settings from the caller's shell (MENTEE_TEST_* are
    the test run's own options, e.g. where the browser test puts its screenshots)."""
    for name in list(os.environ):
        if name.startswith("MENTEE_") and not name.startswith("MENTEE_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "mentee-home"
    monkeypatch.setenv("MENTEE_HOME", str(home))
    # The embedder's ONNX export (~10 s) once per session, not once per home.
    monkeypatch.setenv("MENTEE_MEMORY_EMBED_ONNX_DIR", os.path.join(_torch_cache_folder(), "embedder-onnx"))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma-chat"), chat_template=True)


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A mentee home shared by the slow tests of a session (so vLLM's compile caches are reused)."""
    yield tmp_path_factory.mktemp("mentee-session-home")


@pytest.fixture(scope="session")
def gemma_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mentee home shared by the tests of the real Gemma, so it is prepared once; MENTEE_TEST_HOME reuses one."""
    return Path(os.environ.get("MENTEE_TEST_HOME") or tmp_path_factory.mktemp("gemma-home"))


@pytest.fixture(scope="session")
def embedder():
    from mentee.memory.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@contextmanager
def _shared_student(home: Path, log_path: Path, config: pytest.Config, **settings: str) -> Iterator[str]:
    """``mentee student serve`` (as deploy/compose.yaml runs the student) in ``home``: its URL while it runs."""
    from mentee.server.core.config import load_settings
    from mentee.server.student.client import Student
    from tests.served import free_port, mentee_environment, mentee_process

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = mentee_environment(home, **settings, MENTEE_VLLM_PORT=str(port))
    with (
        mentee_process(["student", "serve"], environment, log_path, health_url=url),
        Student(load_settings(home=home, student_url=url)) as client,
    ):
        config.stash[_SHARED_STUDENTS].append(client)
        try:
            yield url
        finally:
            config.stash[_SHARED_STUDENTS].remove(client)


@pytest.fixture(scope="session")
def tiny_student_url(
    tiny_model_dir: Path, session_home: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[str]:
    """One vLLM serving the tiny student for the whole session. Every test that only needs a student to answer
    (and learn: LoRA adapters are loaded at run time) connects to it (``MENTEE_STUDENT_URL``, ``student_url``)
    instead of paying for a start of its own; a test that kills, restarts or reconfigures vLLM starts its own
    and says why. Adapters a module loaded are unloaded after it (``_shared_students_left_clean``)."""
    log_path = tmp_path_factory.mktemp("shared-tiny-student") / "student.log"
    with _shared_student(session_home, log_path, pytestconfig, MENTEE_STUDENT_MODEL=str(tiny_model_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def gemma_student_url(
    gemma_home: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[str]:
    """One vLLM serving the real Gemma 3 270M (prepared in the shared Gemma home) for the session's Gemma tests
    that only need it to answer and learn: ``mentee ask``, ``calibrate``, ``anchors build`` and a learning round."""
    from mentee.server.student.models import prepare_embedded_student

    model = prepare_embedded_student(gemma_home / "models")
    log_path = tmp_path_factory.mktemp("shared-gemma-student") / "student.log"
    with _shared_student(gemma_home, log_path, pytestconfig, MENTEE_STUDENT_MODEL=str(model)) as url:
        yield url


@pytest.fixture(autouse=True, scope="module")
def _shared_students_left_clean(pytestconfig: pytest.Config) -> Iterator[None]:
    """After each module, the shared students serve no adapter it loaded: adapter names (``student-v1``, …) are
    per mentee home, and the next module's home starts again at v1."""
    yield
    for student in pytestconfig.stash[_SHARED_STUDENTS]:
        for name in student.adapters():
            student.unload_adapter(name)  # a StudentError if vLLM refuses
