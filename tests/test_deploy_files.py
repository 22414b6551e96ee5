"""deploy/compose.yaml and the Dockerfile, checked without Docker (which cannot run here): every service's command
is one mentee (or chroma) really parses, every MENTEE_ setting it sets exists and is valid, the adapters are
shared where vLLM loads them, the image runs as a non-root user with a health check and builds the GPU image
by default. The services themselves run as plain processes in tests/test_deployment.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from mentee.server.cli import app
from mentee.server.core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# Read by the image's health check and the UI, not settings.
NOT_SETTINGS = {"MENTEE_HEALTH_URL", "MENTEE_UI_AUTH"}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} gives its default, ${VAR:?message} a stand-in (the user must set it)."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    return re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: f"stand-in-{m.group(1).lower()}", value)


def test_the_services_the_issue_names_are_there() -> None:
    assert set(SERVICES) == {"chroma", "student", "api", "trainer", "ui"}
    assert {"mentee-home", "chroma-data"} <= set(COMPOSE["volumes"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_command_parses(name: str) -> None:
    command = SERVICES[name]["command"]
    if command[0] == "chroma":
        assert command[1] == "run" and "--path" in command
        return
    assert command[0] == "mentee"
    # Typer carries its own copy of click, so this walks the commands by what they do, not by click's classes.
    found: Any = typer.main.get_command(app)
    context = found.make_context("mentee", list(command[1:]))
    args = [*context._protected_args, *context.args]
    while hasattr(found, "resolve_command"):
        name_, found, args = found.resolve_command(context, args)
        context = found.make_context(name_, args, parent=context)  # raises on a bad option or value
        args = [*getattr(context, "_protected_args", []), *context.args]
    assert not args, f"{command}: left over {args}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_services_settings_exist_and_are_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {k: interpolate(v) for k, v in (SERVICES[name].get("environment") or {}).items()}
    names = {f"MENTEE_{field.upper()}" for field in Settings.model_fields}
    unknown = {k for k in environment if k.startswith("MENTEE_")} - names - NOT_SETTINGS
    assert not unknown, f"{name} sets what mentee has no setting for: {unknown}"
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    load_settings()  # validates every value (URLs, numbers, keys)


def test_student_trainer_and_workers_share_the_home_where_vllm_loads_adapters() -> None:
    for name in ("student", "api", "trainer"):
        assert "mentee-home:/home/mentee/.cache/mentee" in SERVICES[name]["volumes"], name
    for name in ("api", "trainer"):
        environment = SERVICES[name]["environment"]
        assert interpolate(environment["MENTEE_STUDENT_URL"]) == "http://student:8000"
        assert environment["MENTEE_CHROMA_URL"] == "http://chroma:8001"
    assert SERVICES["api"]["environment"]["MENTEE_LEARN_AFTER_ITEMS"] == "0"  # rounds run in the trainer only
    assert int(interpolate(SERVICES["trainer"]["environment"]["MENTEE_LEARN_AFTER_ITEMS"])) > 0
    for name in ("student", "trainer"):
        assert SERVICES[name]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_dockerfile_gpu_by_default_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG VLLM_BUILD=gpu" in dockerfile
    assert re.search(r"^USER mentee$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.MULTILINE)
    assert "RUN mentee model prepare" in dockerfile
    assert "MENTEE_NO_DEV=1" in dockerfile and "MENTEE_NO_DEV" in (ROOT / "scripts" / "install.sh").read_text()
