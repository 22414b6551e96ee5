"""What may listen beyond loopback: the API only with both keys, the UI (which holds the admin key) only behind a
login. Anyone who can reach an open port could otherwise chat on the teacher's bill and rewrite the memory."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..core.config import Settings


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without both keys."""
    if not is_loopback(host) and (settings.api_key is None or settings.admin_key is None):
        msg = (
            f"refusing to listen on {host} without keys: set MENTEE_API_KEY and MENTEE_ADMIN_KEY, or listen on "
            "127.0.0.1"
        )
        raise ConfigError(msg)


def ui_login(host: str) -> tuple[str, str] | None:
    """The UI's login (``MENTEE_UI_AUTH=user:password``): required beyond loopback, optional on it."""
    login = os.environ.get("MENTEE_UI_AUTH", "")
    if login:
        user, _, password = login.partition(":")
        if not user or not password:
            msg = "MENTEE_UI_AUTH must look like user:password"
            raise ConfigError(msg)
        return user, password
    if not is_loopback(host):
        msg = f"refusing to serve the UI on {host} without a login: set MENTEE_UI_AUTH=user:password"
        raise ConfigError(msg)
    return None
