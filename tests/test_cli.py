"""The command line as a user runs it: a subprocess of the installed ``mentee`` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MENTEE = str(Path(sys.executable).parent / "mentee")


def run_mentee(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MENTEE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_help_lists_the_commands() -> None:
    result = run_mentee("--help")
    assert result.returncode == 0
    for command in ("ask", "calibrate", "chat", "config", "model", "serve", "student"):
        assert command in result.stdout


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mentee.server.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = {'torch', 'vllm', 'transformers', 'peft', 'openai', 'httpx', 'pydantic_settings'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_config_shows_effective_values_and_masks_secrets() -> None:
    result = run_mentee("config", env={"MENTEE_MAX_TOKENS": "17", "MENTEE_STUDENT_API_KEY": "sk-hidden"})
    assert result.returncode == 0, result.stderr
    assert "max_tokens = 17" in result.stdout
    assert "sk-hidden" not in result.stdout
    assert 'student_api_key = "**********"' in result.stdout


def test_config_file_option(tmp_path: Path) -> None:
    config = tmp_path / "mentee.toml"
    config.write_text("max_tokens = 21\n")
    result = run_mentee("--config", str(config), "config")
    assert "max_tokens = 21" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("config",), {"MENTEE_VLLM_PORT": "http"}, "MENTEE_VLLM_PORT"),
        (("--config", "/no/such.toml", "config"), {}, "/no/such.toml"),
        (("ask", "   "), {}, "the question is empty"),
        (("ask", "hi"), {"MENTEE_STUDENT_URL": "http://127.0.0.1:9"}, "http://127.0.0.1:9"),
        (("model", "prepare"), {"MENTEE_STUDENT_MODEL": "./missing-model"}, "./missing-model"),
        (("calibrate", "/no/such/qa.jsonl"), {}, "/no/such/qa.jsonl"),
        (("train", "--schedule"), {}, "learn_after_items"),
    ],
)
def test_errors_name_the_bad_value_without_traceback(args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    result = run_mentee(*args, env=env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mentee: error:")


def test_model_prepare_with_own_model_prints_it(tmp_path: Path) -> None:
    result = run_mentee("model", "prepare", env={"MENTEE_STUDENT_MODEL": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org"])
def test_serve_refuses_to_listen_beyond_loopback_without_keys(host: str) -> None:
    result = run_mentee("serve", "--host", host, env={"MENTEE_API_KEY": "k"})
    assert result.returncode == 2
    assert f"refusing to listen on {host} without keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_takes_its_port_before_the_student_and_says_when_it_is_in_use(tmp_path: Path) -> None:
    """Before: the port was bound only after vLLM's minute of start-up, in which vLLM's own processes once took it
    (a failed CI run: "address already in use" after the student had started). Now it is taken first, so a busy
    port is said at once, before any student starts."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_mentee("serve", "--port", str(port), env={"MENTEE_HOME": str(tmp_path)}, timeout=30)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert "starting the student" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--host", "0.0.0.0"), {}, "refusing to serve the UI on 0.0.0.0 without a login"),
        (
            ("--server", "http://127.0.0.1:9"),
            {"MENTEE_UI_AUTH": "admin"},
            "MENTEE_UI_AUTH must look like user:password",
        ),
    ],
)
def test_ui_refuses_to_expose_the_admin_key(args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    result = run_mentee("ui", "--no-open", *args, env=env)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_adapters_list_shows_each_earlier_rounds_retention(tmp_path: Path) -> None:
    import json

    for number, gate in (
        (1, {"verdict": "passed", "new_recall": 0.98, "anchor_accuracy": 1.0}),
        (
            2,
            {
                "verdict": "refused",
                "new_recall": 1.0,
                "retention": 0.5,
                "retention_by_round": {"v1": {"items": 20, "recall": 0.5}},
                "anchor_accuracy": 1.0,
            },
        ),
    ):
        folder = tmp_path / "adapters" / f"v{number}"
        folder.mkdir(parents=True)
        manifest = {"version": f"v{number}", "gate": gate, "data": {"new": 20}}
        (folder / "mentee-adapter.json").write_text(json.dumps(manifest))
    result = run_mentee("adapters", "list", env={"MENTEE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert "v1  passed" in first and "retention None " in first
    assert "v2  refused" in second and "retention 0.5 (v1 0.5)" in second
