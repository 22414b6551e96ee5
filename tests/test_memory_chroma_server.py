"""The memory on a real Chroma server (started by the test), shared by two memories as two workers would."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory, MemoryStoreError
from mentee.server.core.processes import free_port

pytestmark = pytest.mark.chroma

CHROMA = str(Path(sys.executable).parent / "chroma")


def start_chroma(path: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [CHROMA, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("the Chroma server did not start")


class ChromaServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_chroma(path, self.port)

    def restart(self) -> None:
        self.stop()
        self.process = start_chroma(self.path, self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma")
    yield server
    server.stop()


def test_two_memories_share_one_server(chroma_server: ChromaServer, embedder: Embedder) -> None:
    url = chroma_server.url
    worker_a = Memory(url=url, embedder=embedder)
    worker_b = Memory(url=url, embedder=embedder)
    record = worker_a.remember("Who wrote Hamlet?", "Shakespeare", source="teacher:a")
    hit = worker_b.recall("who wrote hamlet")
    assert hit is not None
    assert hit.record.id == record.id
    worker_b.update(record.id, answer="William Shakespeare", trust="human")
    assert worker_a.get(record.id).answer == "William Shakespeare"  # type: ignore[union-attr]
    assert worker_a.recall("What is the capital of Peru?") is None


def test_memory_survives_a_server_restart(chroma_server: ChromaServer, embedder: Embedder) -> None:
    memory = Memory(url=chroma_server.url, embedder=embedder)
    record = memory.remember("What is the capital of Peru?", "Lima", source="teacher:a")
    chroma_server.stop()
    with pytest.raises(MemoryStoreError, match=chroma_server.url):
        memory.get(record.id)  # down: a clear error, not a hang
    chroma_server.restart()
    hit = memory.recall("what is the capital of peru")  # the same client recovers once the server is back
    assert hit is not None
    assert hit.record.answer == "Lima"


def test_unreachable_server_is_a_clear_error(embedder: Embedder) -> None:
    with pytest.raises(MemoryStoreError, match=r"cannot open the memory's Chroma store at http://127\.0\.0\.1:9"):
        Memory(url="http://127.0.0.1:9", embedder=embedder)
