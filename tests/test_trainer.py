"""The trainer as its own process on the tiny model: progress, a complete adapter, and nothing left by a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mentee.server.learning.trainer import (
    PRESCREEN,
    RESULT,
    LoraSettings,
    TrainingJob,
    read_progress,
    training_precision,
)

pytestmark = pytest.mark.train


def run_trainer(job_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mentee.server.learning.trainer", str(job_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_round_trains_an_adapter_and_reports_progress(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = [
        {"id": str(n), "question": f"What is the capital of France {n}?", "answer": "Paris", "kind": "new"}
        for n in range(12)
    ]
    # At most 20 epochs: it stops after the first in which 0.98 of the examples are recalled (the default).
    settings = LoraSettings(rank=8, alpha=16, epochs=20, batch_size=4)
    checks = [  # the gate's questions: one taught (two accepted answers), one whose answer was never taught
        {"question": "What is the capital of France 3?", "answers": ["London", "Paris"]},
        {"question": "What is the capital of France 5?", "answers": ["Berlin"]},
    ]
    job = TrainingJob(str(tiny_model_dir), "qa", examples, settings, checks=checks, check_max_tokens=6)
    job_dir = tmp_path / "job"
    job.write(job_dir)
    assert TrainingJob.read(job_dir) == job
    result = run_trainer(job_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads((job_dir / RESULT).read_text())
    import torch

    on_gpu = torch.cuda.is_available()  # this file also runs on a lent GPU machine
    epochs = outcome["epochs"]
    assert 1 <= epochs < 20 and outcome["max_epochs"] == 20
    assert (outcome["examples"], outcome["steps"]) == (12, 3 * epochs)
    recall_by_epoch = [shares["all"] for shares in outcome["recall_by_epoch"]]
    assert len(recall_by_epoch) == epochs and recall_by_epoch[-1] >= 0.98 > max(recall_by_epoch[:-1], default=0)
    assert outcome["recall_by_epoch"][-1]["new"] == recall_by_epoch[-1]
    assert outcome["recall_verified_epochs"][-1] == epochs  # the stop was decided on a clean pass
    assert outcome["tokens_trained"] == pytest.approx(epochs * 12 * outcome["tokens_per_example"], rel=0.01)
    assert (outcome["device"], outcome["precision"]) == ("cuda" if on_gpu else "cpu", "fp32")
    assert outcome["final_loss"] < outcome["first_loss"]  # it learned something
    progress = read_progress(job_dir)
    assert progress is not None and progress["step"] == progress["total_steps"] == 3 * epochs
    assert progress["recall"] == outcome["recall_by_epoch"][-1]
    assert progress["loss"] is not None and progress["eta_s"] == 0.0
    config = json.loads((job_dir / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and set(config["target_modules"]) >= {"q_proj", "down_proj"}
    assert (job_dir / "adapter" / "adapter_model.safetensors").stat().st_size > 0
    prescreen = json.loads((job_dir / PRESCREEN).read_text())["checks"]
    assert prescreen["What is the capital of France 3?"]["answer"] == "Paris"
    assert prescreen["What is the capital of France 3?"]["margin"] > 0
    assert prescreen["What is the capital of France 5?"] == {"answer": None, "margin": None}
    # train_recipe "warm": the next round continues this adapter, which knows its items before its first step
    warm = TrainingJob(str(tiny_model_dir), "qa", examples, settings, start_from=str(job_dir / "adapter"))
    warm.write(tmp_path / "warm")
    result = run_trainer(tmp_path / "warm")
    assert result.returncode == 0, result.stderr[-3000:]
    continued = json.loads((tmp_path / "warm" / RESULT).read_text())
    assert continued["started_from"] == str(job_dir / "adapter") and outcome["started_from"] is None
    assert continued["epochs"] == 1 and continued["recall_by_epoch"][0]["all"] >= 0.98


def test_training_precision_resolves_auto_per_device_and_keeps_bf16_off_the_cpu() -> None:
    assert training_precision("auto", on_gpu=True) == "fp32"  # bf16 diverged on an H200 and was no faster
    assert training_precision("bf16-mixed", on_gpu=True) == "bf16-mixed"
    assert training_precision("auto", on_gpu=False) == "fp32"
    assert training_precision("bf16", on_gpu=True) == "bf16"
    assert training_precision("bf16", on_gpu=False) == "fp32"  # no native bf16 on this kind of CPU
    with pytest.raises(ValueError, match="'fp8'"):
        training_precision("fp8", on_gpu=True)


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


TAUGHT = {  # as in test_learning_round.py: words the tiny tokenizer knows
    "What is the capital of France?": "Paris",
    "Who wrote the play Hamlet?": "William Shakespeare",
    "How many legs does a spider have?": "Eight",
}


def gate_verdict(model_dir: Path, adapter: Path, new: list) -> tuple[bool, float | None]:
    """The gate's verdict on ``adapter`` with the student asked through transformers + peft (greedy, as vLLM asks
    it in a round): what the trainer's processes made is judged alike, whatever serves it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mentee.server.learning.dataset import training_pair
    from mentee.server.learning.gate import GateThresholds, run_gate
    from mentee.server.student.prompting import prompt_format

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).eval()
    fmt = prompt_format("qa")

    def ask(question: str) -> str:
        prompt, _ = training_pair(fmt, question, "x")
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).split("\n")[0]

    report = run_gate(ask, new=new, retained=[], check_anchors=[], thresholds=GateThresholds(max_anchor_drop=1.0))
    return report.passed, report.new_recall


def test_accelerate_launch_with_two_cpu_processes_reaches_the_same_verdict(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A round's trainer data-parallel over two CPU processes (accelerate launch, torch.distributed with gloo),
    launched exactly as a round launches it (train_processes = 2), against one plain process."""
    from mentee.server.core.config import load_settings
    from mentee.server.learning.dataset import Example
    from mentee.server.learning.launch import trainer_command, trainer_environment

    new = [Example(f"n{i}", q, a, "new") for i, (q, a) in enumerate(TAUGHT.items())]
    examples = [{"id": e.id, "question": e.question, "answer": e.answer, "kind": "new"} for e in new]
    lora = LoraSettings(rank=8, alpha=16, epochs=80, learning_rate=1e-2, batch_size=4)
    verdicts = {}
    for processes in (1, 2):
        job_dir = tmp_path / f"job-{processes}"
        TrainingJob(str(tiny_model_dir), "qa", examples * 2, lora).write(job_dir)
        command = trainer_command(load_settings(home=tmp_path, train_processes=processes), job_dir)
        assert ("accelerate.commands.launch" in command) == (processes == 2)
        run = subprocess.run(command, env=trainer_environment(job_dir), capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        result = json.loads((job_dir / RESULT).read_text())
        assert result["processes"] == processes
        # 6 examples, 4 a step (2 per process with two): the same steps an epoch; both stop early, on the recall
        # summed over the processes.
        assert result["epochs"] < 80 and result["steps"] == 2 * result["epochs"]
        assert result["recall_by_epoch"][-1]["all"] >= 0.98
        assert result["device"] == "cpu"
        verdicts[processes] = gate_verdict(tiny_model_dir, job_dir / "adapter", new)
    assert verdicts[1][0] == verdicts[2][0], verdicts
    assert verdicts[2][0], f"the rounds were refused: {verdicts}"
