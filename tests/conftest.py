"""Shared fixtures: an isolated mentee home, and the tiny random Gemma-3 student (built once per session)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_model import build_random_lora, build_tiny_gemma

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # torch and Gradio make folders in /tmp; keep them (and their subprocesses') inside a temp dir we remove.
    folder = tempfile.mkdtemp(prefix="mentee-tests-torch-")
    config.stash[_TORCH_CACHE] = folder
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(folder, "gradio")  # Gradio's files (uploads, edit history) too


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_TORCH_CACHE, ""), ignore_errors=True)


_TORCH_CACHE = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own mentee home and no MENTEE_* settings from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("MENTEE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "mentee-home"
    monkeypatch.setenv("MENTEE_HOME", str(home))
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
