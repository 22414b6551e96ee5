"""Child processes mentee starts (vLLM, the trainer, a served API): free ports, the API's listening socket, and
dying with the parent."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys

from .errors import ConfigError

_PR_SET_PDEATHSIG = 1


def free_port(host: str) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def listen_on(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free one), as uvicorn opens it; a :class:`ConfigError`
    naming the address when it cannot be had (in use, not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as e:
        listener.close()
        msg = f"cannot listen on {host}:{port} (api_host / api_port, --host / --port): {e.strerror or e}"
        raise ConfigError(msg) from e
    return listener  # not inheritable (PEP 446): vLLM and the trainer never hold the API's port


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when its parent dies, however it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
