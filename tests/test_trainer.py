"""The trainer as its own process on the tiny model: progress, a complete adapter, and nothing left by a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mentee.server.trainer import RESULT, LoraSettings, TrainingJob, read_progress

pytestmark = pytest.mark.train


def run_trainer(job_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mentee.server.trainer", str(job_dir)], capture_output=True, text=True, timeout=600
    )


def test_a_round_trains_an_adapter_and_reports_progress(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = [
        {"id": str(n), "question": f"What is the capital of France {n}?", "answer": "Paris", "kind": "new"}
        for n in range(12)
    ]
    job = TrainingJob(str(tiny_model_dir), "qa", examples, LoraSettings(rank=8, alpha=16, epochs=4, batch_size=4))
    job_dir = tmp_path / "job"
    job.write(job_dir)
    assert TrainingJob.read(job_dir) == job
    result = run_trainer(job_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads((job_dir / RESULT).read_text())
    assert (outcome["examples"], outcome["steps"], outcome["device"]) == (12, 12, "cpu")
    assert outcome["final_loss"] < outcome["first_loss"]  # it learned something
    progress = read_progress(job_dir)
    assert progress is not None and progress["step"] == progress["total_steps"] == 12
    assert progress["loss"] is not None and progress["eta_s"] == 0.0
    config = json.loads((job_dir / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and set(config["target_modules"]) >= {"q_proj", "down_proj"}
    assert (job_dir / "adapter" / "adapter_model.safetensors").stat().st_size > 0


def test_a_failed_job_leaves_no_result(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    TrainingJob(str(tmp_path / "no-such-model"), "qa", [{"question": "q?", "answer": "a"}]).write(job_dir)
    result = run_trainer(job_dir)
    assert result.returncode != 0
    assert not (job_dir / RESULT).exists()
    assert not (job_dir / "adapter").exists()
    usage = run_trainer(tmp_path / "missing")
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_a_diverging_round_stops_with_a_clear_error_and_no_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Seen on a GPU (bf16): gradients turned NaN mid-round and the trainer went on "training" at loss 0.
    # An absurd learning rate makes the weights overflow on any machine.
    examples = [{"id": str(n), "question": f"Who wrote Hamlet {n}?", "answer": "Shakespeare"} for n in range(8)]
    job = TrainingJob(str(tiny_model_dir), "qa", examples, LoraSettings(epochs=3, batch_size=4, learning_rate=1e38))
    job_dir = tmp_path / "job"
    job.write(job_dir)
    result = run_trainer(job_dir)
    assert result.returncode == 3, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("training diverged:")
    assert not (job_dir / RESULT).exists()
    assert not (job_dir / "adapter").exists()
