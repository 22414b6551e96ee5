"""The trainer alone: how fast one LoRA round trains on this machine's CPU or GPU, and whether the adapter learned.

Run: ``.venv/bin/python bench/trainer_speed.py [--model DIR] [--examples 200] [--epochs 12] [--out FILE]``.
``--model`` is a Hugging Face folder (default: the embedded Gemma 3 270M, prepared in ``--home`` or
``$MENTEE_HOME``). ``--random-weights`` keeps the model's shape and tokenizer but initialises the weights at random
(for a machine where the weights cannot be brought: the timings hold, the recall does not mean anything).

It runs mentee's own trainer process (``python -m mentee.server.learning.trainer``) on ``--examples`` NQ questions with
their first accepted answer, exactly as a learning round does (the student's prompt format, loss on the answer,
the default LoRA settings), then loads the adapter with peft on the same device and asks the taught questions
greedily: the share answered with the taught answer. Progress on stderr; one final JSON line on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NQ = REPO / "data" / "nq-open-dev.jsonl"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def random_copy(model: Path, folder: Path) -> Path:
    """``model``'s config and tokenizer with freshly initialised weights, saved in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model).save_pretrained(folder)
    return folder


def recall(model: Path, adapter: Path, examples: list[dict[str, Any]], prompt_format_name: str) -> float:
    """Share of taught questions answered (greedy, the adapter on) with an accepted answer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mentee.server.core.answers import is_correct
    from mentee.server.learning.dataset import training_pair
    from mentee.server.student.prompting import prompt_format

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.padding_side = "left"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device)
    tuned = PeftModel.from_pretrained(base, adapter).eval()
    fmt = prompt_format(prompt_format_name)
    right = 0
    for start in range(0, len(examples), 16):
        batch = examples[start : start + 16]
        prompts = [training_pair(fmt, e["question"], e["answer"], tokenizer)[0] for e in batch]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            out = tuned.generate(**inputs, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        for example, row in zip(batch, out[:, inputs["input_ids"].shape[1] :], strict=True):
            answer = tokenizer.decode(row, skip_special_tokens=True).split("\n")[0]
            right += is_correct(answer, example["answers"])
    return right / len(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a Hugging Face model folder (default: the embedded student)")
    parser.add_argument("--home", type=Path, help="mentee home holding the prepared embedded student")
    parser.add_argument("--random-weights", action="store_true", help="the model's shape, weights at random")
    parser.add_argument("--examples", type=int, default=200, help="NQ questions taught (default 200)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12, as a round)")
    formats = ["qa", "qa-bare", "chat"]
    parser.add_argument("--prompt-format", default="qa", choices=formats, help="the format trained in")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16-mixed", "bf16"],
        help="training number format, as train_precision (default auto: fp32; a CPU always trains in fp32)",
    )
    parser.add_argument("--learning-rate", type=float, help="as train_learning_rate (default: its default)")
    parser.add_argument(
        "--lr-schedule", choices=["constant", "linear", "cosine"], help="as train_lr_schedule (default: its default)"
    )
    parser.add_argument(
        "--stop-recall", type=float, default=0.0, help="as train_stop_recall (default 0: all --epochs, fixed work)"
    )
    parser.add_argument("--out", type=Path, help="also write the final JSON line to this file")
    args = parser.parse_args()
    if args.examples < 1 or args.epochs < 1:
        parser.error(f"--examples and --epochs must be at least 1, got {args.examples} and {args.epochs}")

    import torch

    from mentee.server.learning.trainer import RESULT, LoraSettings, TrainingJob

    model = args.model
    if model is None:
        from mentee.server.student.models import prepare_embedded_student

        home = args.home or Path(os.environ.get("MENTEE_HOME", Path.home() / ".mentee"))
        model = prepare_embedded_student(home / "models")
    rows = [json.loads(line) for line in NQ.read_text().splitlines() if line.strip()][: args.examples]
    examples = [
        {"id": f"nq-{i}", "question": r["question"], "answer": r["answers"][0], "answers": r["answers"], "kind": "new"}
        for i, r in enumerate(rows)
    ]
    with tempfile.TemporaryDirectory(prefix="mentee-bench-trainer-") as scratch:
        if args.random_weights:
            log(f"random weights in the shape of {model}")
            model = random_copy(model, Path(scratch) / "model")
        job_dir = Path(scratch) / "job"
        lora = LoraSettings(epochs=args.epochs, stop_recall=args.stop_recall, precision=args.precision)
        if args.learning_rate is not None:
            lora = dataclasses.replace(lora, learning_rate=args.learning_rate)
        if args.lr_schedule is not None:
            lora = dataclasses.replace(lora, lr_schedule=args.lr_schedule)
        TrainingJob(str(model), args.prompt_format, examples, lora).write(job_dir)
        log(f"training {len(examples)} examples x {args.epochs} epochs on {model}")
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "mentee.server.learning.trainer", str(job_dir)])
        wall = time.perf_counter() - started
        if run.returncode != 0:  # a diverged round (exit 3) is a result too: reported, not a traceback
            print(
                json.dumps(
                    {
                        "bench": "trainer_speed",
                        "error": f"trainer exit {run.returncode}",
                        "precision": args.precision,
                        "process_s": round(wall, 1),
                    }
                )
            )
            sys.exit(1)
        result = json.loads((job_dir / RESULT).read_text())
        log(f"trained: {result}")
        taught = recall(Path(model), job_dir / "adapter", examples, args.prompt_format)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    report = {
        "bench": "trainer_speed",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f", {gpu}" if gpu else ""),
        "device": result["device"],
        "precision": result["precision"],
        "random_weights": args.random_weights,
        "examples": result["examples"],
        "epochs": result["epochs"],
        "learning_rate": lora.learning_rate,
        "lr_schedule": lora.lr_schedule,
        "recall_by_epoch": [shares["all"] for shares in result.get("recall_by_epoch", [])],
        "tokens_per_example": result.get("tokens_per_example"),
        "steps": result["steps"],
        "batch_size": lora.batch_size,
        "train_s": result["seconds"],
        "process_s": round(wall, 1),
        "s_per_step": round(result["seconds"] / max(result["steps"], 1), 3),
        "first_loss": result["first_loss"],
        "final_loss": result["final_loss"],
        "taught_recall": round(taught, 3),
        "torch": torch.__version__,
    }
    line = json.dumps(report)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
