"""Provisioning logic with a fake builder (the real conversion runs in test_e2e_gemma.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentee.server.core.errors import ModelPrepareError
from mentee.server.student import models


@pytest.fixture
def fake_builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    built: list[Path] = []

    def fake_build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
        (tmp / "model.safetensors").write_bytes(b"weights" * 100)
        built.append(tmp)

    monkeypatch.setattr(models, "_build_from_gguf", fake_build)
    return built


def test_prepare_once_then_reuse(tmp_path: Path, fake_builds: list[Path]) -> None:
    folder = models.prepare_embedded_student(tmp_path)
    assert folder == tmp_path / "gemma-3-270m"
    manifest = json.loads((folder / "mentee-model.json").read_text())
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert manifest["prompt_format"] == "qa"
    assert models.prepare_embedded_student(tmp_path) == folder
    assert len(fake_builds) == 1
    assert not list(tmp_path.glob(".gemma-3-270m.tmp-*"))


def test_corrupt_folder_is_rebuilt(tmp_path: Path, fake_builds: list[Path]) -> None:
    folder = models.prepare_embedded_student(tmp_path)
    (folder / "model.safetensors").write_bytes(b"Weights" * 100)  # same size, other bytes
    assert models.check_model_folder(folder) == "file model.safetensors fails its checksum"
    assert models.check_model_folder(folder, verify=False) is None
    models.prepare_embedded_student(tmp_path)
    assert len(fake_builds) == 2
    assert models.check_model_folder(folder) is None


def test_interrupted_prepare_leaves_nothing_half_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_build_from_gguf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        models.prepare_embedded_student(tmp_path)
    assert not (tmp_path / "gemma-3-270m").exists()
    assert not list(tmp_path.glob(".gemma-3-270m.tmp-*"))
    assert models.check_model_folder(tmp_path / "gemma-3-270m") == "no manifest (never prepared, or interrupted)"


def test_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(tmp: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(models, "_build_from_gguf", broken)
    with pytest.raises(ModelPrepareError, match="disk full"):
        models.prepare_embedded_student(tmp_path)
