from __future__ import annotations

from pathlib import Path

import pytest

from mentee.server.core.config import Settings, describe_settings, load_settings
from mentee.server.core.errors import ConfigError


def test_defaults_and_home_from_environment(_isolated_environment: Path) -> None:
    settings = load_settings()
    assert settings.home == _isolated_environment
    assert settings.models_dir == _isolated_environment / "models"
    assert settings.student_model == ""
    assert settings.prompt_format == "auto"
    assert settings.vllm_max_lora_rank == 16


def test_every_field_has_help() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 10, name


def test_environment_overrides_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mentee.toml"
    config.write_text('max_tokens = 32\ntemperature = 0.5\nvllm_extra_args = ["--enforce-eager"]\n')
    monkeypatch.setenv("MENTEE_MAX_TOKENS", "48")
    settings = load_settings(config)
    assert settings.max_tokens == 48  # environment beats the file
    assert settings.temperature == 0.5  # the file beats the default
    assert settings.vllm_extra_args == ["--enforce-eager"]
    assert load_settings(config, max_tokens=12).max_tokens == 12  # code beats both


def test_config_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mentee.toml"
    config.write_text("top_logprobs = 5\n")
    monkeypatch.setenv("MENTEE_CONFIG", str(config))
    assert load_settings().top_logprobs == 5


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("MENTEE_VLLM_PORT", "99999", "vllm_port"),
        ("MENTEE_MAX_TOKENS", "many", "max_tokens"),
        ("MENTEE_VLLM_MAX_LORA_RANK", "12", "vllm_max_lora_rank"),
        ("MENTEE_STUDENT_URL", "localhost:8000", "student_url"),
        ("MENTEE_STUDENT_MODEL", "/no/such/model", "student_model"),
        ("MENTEE_PROMPT_FORMAT", "fancy", "prompt_format"),
        ("MENTEE_TRAIN_PRECISION", "fp8", "train_precision"),
    ],
)
def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert named in message
    assert env in message
    assert value in message


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "mentee.toml"
    config.write_text("max_tokenz = 3\n")
    with pytest.raises(ConfigError, match=r"max_tokenz.*not a mentee setting"):
        load_settings(config)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("max_tokens = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def test_student_url_is_normalised() -> None:
    assert load_settings(student_url="http://127.0.0.1:8000/v1/").student_url == "http://127.0.0.1:8000"


def test_secret_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTEE_STUDENT_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert settings.student_api_key is not None
    assert settings.student_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in describe_settings(settings)


def test_described_settings_load_back(tmp_path: Path) -> None:
    settings = load_settings(max_tokens=33, vllm_extra_args=["--enforce-eager"])
    text = describe_settings(settings)
    assert "# Most tokens the student writes per answer." in text
    config = tmp_path / "mentee.toml"
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("student_api_key")))
    again = load_settings(config)
    assert again.max_tokens == 33
    assert again.vllm_extra_args == ["--enforce-eager"]
