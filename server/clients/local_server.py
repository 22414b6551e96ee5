"""A mentee server close at hand: ``mentee serve`` as a child process on a free loopback port (what ``mentee ui``
starts when given no server), or this process's own mentee through the API app without a socket (what ``mentee
eval`` uses when given no server)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.processes import die_with_parent, free_port
from .http import MenteeClient, wait_until_healthy

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..service import Mentee

logger = logging.getLogger(__name__)

IN_PROCESS_URL = "http://mentee.local"


@contextlib.contextmanager
def serving_here(settings: Settings, *, config_file: Path | None, say: Callable[[str], None]) -> Iterator[str]:
    """``mentee serve`` as a child process on a free loopback port, stopped on the way out; its URL."""
    port = free_port("127.0.0.1")
    command = [sys.executable, "-m", "mentee.server.cli"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "ui-serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a killed UI takes its server (and so the student) with it
        )
        try:
            url = f"http://127.0.0.1:{port}"
            say(f"starting mentee serve for the UI (log: {log_path}; about a minute on a CPU)...")
            # the student's start, then (once per home) the anchor set: the base student asked up to anchors_limit
            wait_until_healthy(url, timeout_s=settings.vllm_startup_timeout_s + 600, process=process, log_path=log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def in_process_client(mentee: Mentee, *, timeout_s: float = 600.0) -> Iterator[MenteeClient]:
    """A client of this process's own (started) mentee: the API app without a socket."""
    from fastapi.testclient import TestClient

    from ..api.app import create_app

    with TestClient(create_app(mentee), base_url=IN_PROCESS_URL) as http:
        client = MenteeClient.for_settings(IN_PROCESS_URL, mentee.settings, timeout_s=timeout_s, http_client=http)
        try:
            yield client
        finally:
            client.close()
