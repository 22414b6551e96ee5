"""How the trainer process is started: its command line (one process, or data-parallel ones through Hugging Face
accelerate) and its environment; and the base model's checksum the adapter's manifest records."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.processes import free_port
from ..student.prompting import MANIFEST_NAME

if TYPE_CHECKING:
    from ..core.config import Settings


def trainer_command(settings: Settings, job_dir: Path) -> list[str]:
    """The trainer's command line: one process, or ``train_processes`` data-parallel ones through Hugging Face
    accelerate (torch.distributed underneath: NCCL on GPUs, gloo on CPUs)."""
    trainer = ["-m", "mentee.server.learning.trainer", str(job_dir)]
    if settings.train_processes == 1 and not settings.train_launch_args:
        return [sys.executable, *trainer]
    # accelerate's --multi_gpu is its torch.distributed launcher; without a GPU the processes train on CPU
    # with gloo (the trainer sets use_cpu), with GPUs one process per device.
    launch = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes", str(settings.train_processes),
        "--mixed_precision", "no",  # the trainer picks bf16 itself on GPUs
        "--dynamo_backend", "no",
    ]  # fmt: skip
    if "--main_process_port" not in settings.train_launch_args:
        launch += ["--main_process_port", str(free_port("127.0.0.1"))]
    if "--num_machines" not in settings.train_launch_args:
        launch += ["--num_machines", "1"]
    return [*launch, *settings.train_launch_args, *trainer]


def trainer_environment(job_dir: Path) -> dict[str, str]:
    """The trainer's environment: its temp files (torch.distributed's rendezvous among them) in the job's folder."""
    temp = job_dir / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(temp)}


def base_checksum(model_dir: Path | None) -> str | None:
    """The base model's checksum: the one in mentee's model manifest, else a sha256 of its weight files."""
    if model_dir is None:
        return None
    manifest = model_dir / MANIFEST_NAME
    if manifest.is_file():
        files = json.loads(manifest.read_text()).get("files", {})
        weights = sorted((name, entry) for name, entry in files.items() if name.endswith(".safetensors"))
        recorded = [f"{name}:{entry['sha256']}" for name, entry in weights]
        if recorded:
            return hashlib.sha256("\n".join(recorded).encode()).hexdigest()
    digest = hashlib.sha256()
    for weights in sorted(model_dir.glob("*.safetensors")):
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
