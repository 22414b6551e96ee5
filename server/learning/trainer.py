"""The trainer: one LoRA round as its own process, never inside a request.

``python -m mentee.server.learning.trainer JOB_DIR`` reads ``JOB_DIR/job.json`` (base model, prompt format, examples,
LoRA and optimiser settings), trains a peft LoRA adapter with transformers' ``Trainer`` (CPU or GPU, and
data-parallel under ``accelerate launch``), reports progress (step, loss, ETA) to ``JOB_DIR/progress.json``
as it goes, and writes the adapter to ``JOB_DIR/adapter`` with ``JOB_DIR/result.json`` last: a job without
``result.json`` did not finish, and nothing outside ``JOB_DIR`` is touched.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import FromSettings, setting_field
from ..core.files import write_json

logger = logging.getLogger(__name__)

JOB = "job.json"
PROGRESS = "progress.json"
RESULT = "result.json"


@dataclass(frozen=True)
class LoraSettings(FromSettings):
    """The adapter's shape and how it is trained (the settings' ``lora_*`` / ``train_*`` fields)."""

    rank: int = setting_field("lora_rank")
    alpha: int = setting_field("lora_alpha")
    dropout: float = setting_field("lora_dropout")
    target_modules: tuple[str, ...] = setting_field("lora_target_modules")
    epochs: int = setting_field("train_epochs")  # at most; fewer when stop_recall is reached
    stop_recall: float = setting_field("train_stop_recall")  # 0: always ``epochs``
    learning_rate: float = setting_field("train_learning_rate")
    batch_size: int = setting_field("train_batch_size")
    seed: int = setting_field("train_seed")
    precision: str = setting_field("train_precision")  # "auto" (fp32), "fp32", "bf16-mixed" or "bf16"


def training_precision(requested: str, on_gpu: bool) -> str:
    """The number format a round trains in: ``requested``, "auto" being fp32. On an H200 (random Gemma-3-270M-shaped
    weights, 93 NQ items) rounds in bf16 and in bf16-mixed both got NaN gradients by step 6, while fp32 trained all
    96 steps, at 0.22 s a step, no slower: a small student gains nothing from bf16. bf16 needs a GPU (this kind of
    CPU has no native bf16: it would be emulated, slower than fp32)."""
    if requested == "auto":
        return "fp32"
    if requested not in ("fp32", "bf16-mixed", "bf16"):
        raise ValueError(f"unknown training precision {requested!r}: auto, fp32, bf16-mixed or bf16")
    return requested if on_gpu else "fp32"


@dataclass(frozen=True)
class TrainingJob:
    """Everything one trainer process needs; written as ``job.json``."""

    base_model: str
    prompt_format: str  # "qa" or "chat"
    examples: list[dict[str, Any]]  # {"id", "question", "answer", "kind", …}
    lora: LoraSettings = field(default_factory=LoraSettings)

    def write(self, job_dir: Path) -> Path:
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / JOB
        path.write_text(json.dumps({**asdict(self), "lora": asdict(self.lora)}, indent=1))
        return path

    @classmethod
    def read(cls, job_dir: Path) -> TrainingJob:
        data = json.loads((job_dir / JOB).read_text())
        lora = data.pop("lora")
        lora["target_modules"] = tuple(lora["target_modules"])
        return cls(**data, lora=LoraSettings(**lora))


class TrainingDivergedError(RuntimeError):
    """The loss or the adapter's weights became NaN or infinite; no adapter is written."""


def read_progress(job_dir: Path) -> dict[str, Any] | None:
    """The trainer's last progress report, or ``None`` before its first."""
    try:
        return dict(json.loads((job_dir / PROGRESS).read_text()))
    except (OSError, ValueError):
        return None


def train(job_dir: Path) -> dict[str, Any]:
    """Run the job in ``job_dir``; the result (also written to ``result.json``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from ..student.prompting import prompt_format
    from .dataset import training_pair

    job = TrainingJob.read(job_dir)
    started = time.monotonic()
    torch.manual_seed(job.lora.seed)
    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Padded on the left, every answer ends a row, so only the last few positions need logits (see AnswerLossTrainer).
    tokenizer.padding_side = "left"
    fmt = prompt_format(job.prompt_format)
    rows = []
    for index, example in enumerate(job.examples):
        prompt, completion = training_pair(fmt, example["question"], example["answer"], tokenizer)
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        rows.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "attention_mask": [1] * (len(prompt_ids) + len(completion_ids)),
                "labels": [-100] * len(prompt_ids) + completion_ids,  # loss on the answer only
                "index": index,  # which example a batch row is, for the recall that stops training early
            }
        )
    kinds = [str(example.get("kind", "new")) for example in job.examples]
    on_gpu = torch.cuda.is_available()
    precision = training_precision(job.lora.precision, on_gpu)
    # bf16-mixed: fp32 weights, bf16 compute under autocast; bf16: the weights in bf16 too.
    weights_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(job.base_model, dtype=weights_dtype)
    config = LoraConfig(
        r=job.lora.rank,
        lora_alpha=job.lora.alpha,
        lora_dropout=job.lora.dropout,
        target_modules=list(job.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()

    recall = EpochRecall(kinds)

    class Progress(TrainerCallback):
        loss: float | None = None

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            self.loss = (logs or {}).get("loss", self.loss)
            self.write(state, state.max_steps)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.write(state, state.global_step)  # an early stop ends the bar at its last step, not short of it

        def write(self, state: Any, steps: int) -> None:
            if not state.is_world_process_zero:
                return
            elapsed = time.monotonic() - started
            step, total_steps = state.global_step, max(steps, 1)
            rate = elapsed / step if step else None
            write_json(
                job_dir / PROGRESS,
                {
                    "step": step,
                    "total_steps": total_steps,
                    "epoch": round(state.epoch or 0.0, 3),
                    "loss": self.loss,
                    "elapsed_s": round(elapsed, 1),
                    "eta_s": round(rate * (total_steps - step), 1) if rate else None,
                    "recall": recall.history[-1] if recall.history else None,
                },
            )

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            shares = recall.end_epoch()
            logger.info("epoch %d: recalled under teacher forcing %s", len(recall.history), shares)
            if job.lora.stop_recall and shares["all"] >= job.lora.stop_recall:
                control.should_training_stop = True  # every process sees the same all-reduced share

    # Under `accelerate launch` each of WORLD_SIZE processes takes its share of a step's batch, so a round takes the
    # same steps over the same examples however many processes train it.
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args = TrainingArguments(
        output_dir=str(job_dir / "checkpoints"),
        num_train_epochs=job.lora.epochs,
        learning_rate=job.lora.learning_rate,
        per_device_train_batch_size=max(1, job.lora.batch_size // world_size),
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=job.lora.seed,
        use_cpu=not on_gpu,
        bf16=precision != "fp32",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )

    class AnswerLossTrainer(Trainer):
        """Computes logits only where answer tokens are predicted. The output layer of a small model with a large
        vocabulary (Gemma 3 270M: 262k words x 640) costs more than the rest of the model, and the prompts (few-shot
        examples + question) are several times longer than the answers: a round runs about twice as fast."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            labels = inputs["labels"]
            rows_index = inputs["index"]
            answer_span = int((labels != -100).sum(dim=1).max())
            outputs = model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                logits_to_keep=answer_span + 1,
            )
            # The logit at position p predicts the token at p + 1: the kept logits but the last predict the last
            # ``answer_span`` tokens, where every row's answer lies.
            logits = outputs.logits[:, :-1, :].float()
            targets = labels[:, -answer_span:]
            # The row is recalled when greedy decoding would write its whole answer (and its end): a by-product
            # of the logits the loss needs anyway, so the early stop costs no extra forward pass.
            with torch.no_grad():
                right = ((logits.argmax(dim=-1) == targets) | (targets == -100)).all(dim=1)
            recall.record(rows_index.tolist(), right.tolist())
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100
            )
            if not torch.isfinite(loss):  # a diverged round stops here instead of training on for nothing
                raise TrainingDivergedError(
                    f"training diverged: the loss is {loss.item()} at step {self.state.global_step + 1} "
                    f"(learning rate {job.lora.learning_rate}, {precision} on {'GPU' if on_gpu else 'CPU'}); "
                    "a lower learning rate may help" + (", or train_precision fp32" if precision != "fp32" else "")
                )
            return (loss, outputs) if return_outputs else loss

    trainer = AnswerLossTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[Progress()],
    )
    output = trainer.train()
    broken = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if broken:  # a non-finite last step leaves no loss to catch it: the adapter itself is checked
        raise TrainingDivergedError(
            f"training diverged: {len(broken)} adapter tensors hold NaN or inf, e.g. {broken[0]}"
        )
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tokens = [len(row["input_ids"]) for row in rows]
    answer_tokens = [sum(label != -100 for label in row["labels"]) for row in rows]
    result = {
        "examples": len(rows),
        "steps": trainer.state.global_step,
        "epochs": len(recall.history),
        "max_epochs": job.lora.epochs,
        "stop_recall": job.lora.stop_recall,
        "recall_by_epoch": recall.history,  # share of examples recalled under teacher forcing, per epoch
        "tokens_per_example": round(sum(tokens) / max(len(tokens), 1), 1),
        "answer_tokens_per_example": round(sum(answer_tokens) / max(len(answer_tokens), 1), 1),
        "tokens_trained": sum(tokens) * len(recall.history),  # unpadded tokens through the model, all epochs
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": output.training_loss,
        "seconds": round(time.monotonic() - started, 1),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": "cuda" if on_gpu else "cpu",
        "precision": precision,
        "processes": world_size,
    }
    if trainer.is_world_process_zero():
        model.save_pretrained(job_dir / "adapter")
        tokenizer.save_pretrained(job_dir / "adapter")
        write_json(job_dir / RESULT, result)
    return result


class EpochRecall:
    """Which examples the model recalls under teacher forcing, epoch by epoch: each batch row counts for its example
    (the last time it was seen), and at an epoch's end the shares are taken, over all examples and per kind.
    Under data parallelism each process sees its share of the rows: the counts are summed over processes."""

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.right: dict[int, bool] = {}
        self.history: list[dict[str, float]] = []

    def record(self, indices: list[int], right: list[bool]) -> None:
        self.right.update(zip(indices, right, strict=True))

    def end_epoch(self) -> dict[str, float]:
        import torch

        names = ["all", *sorted(set(self.kinds))]
        counts = torch.zeros(2 * len(names), dtype=torch.float64)
        for index, right in self.right.items():
            for name in ("all", self.kinds[index]):
                slot = names.index(name)
                counts[2 * slot] += int(right)
                counts[2 * slot + 1] += 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_backend() == "nccl":
                counts = counts.cuda()
            torch.distributed.all_reduce(counts)
            counts = counts.cpu()
        shares = {
            name: round(float(counts[2 * i] / counts[2 * i + 1]), 4)
            for i, name in enumerate(names)
            if counts[2 * i + 1] > 0
        }
        self.history.append(shares)
        self.right = {}
        return shares


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / JOB).is_file():
        print(f"usage: python -m mentee.server.learning.trainer JOB_DIR (with {JOB} in it)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        train(Path(args[0]))
    except TrainingDivergedError as e:
        print(e, file=sys.stderr)  # the last line of the log, which the round's error quotes
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
