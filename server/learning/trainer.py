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
PRESCREEN = "prescreen.json"  # the trained adapter's teacher-forced answers to the gate's questions (job.checks)


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
    lr_schedule: str = setting_field("train_lr_schedule")  # transformers' lr_scheduler_type, over `epochs`
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
    # The gate's questions the adapter will answer, {"question", "answers"}: after training, which of its accepted
    # answers greedy decoding writes, and by what logit margin (PRESCREEN). Answers longer than check_max_tokens
    # tokens are not checked (the gate's generation would cut them).
    checks: list[dict[str, Any]] = field(default_factory=list)
    check_max_tokens: int = 64
    # An adapter folder to continue from (train_recipe "warm"; the same rank and target modules as ``lora``), or
    # empty for a new adapter from the base model.
    start_from: str = ""

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
    from peft import LoraConfig, PeftModel, get_peft_model
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
    if job.start_from:  # its config (rank, alpha, modules) comes with it; the round checked it matches ``lora``
        model = PeftModel.from_pretrained(model, job.start_from, is_trainable=True)
    else:
        model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()

    recall = EpochRecall(kinds)
    output_layer = model.get_output_embeddings()  # frozen (tied to the embedding in Gemma)
    softcap = getattr(model.config, "final_logit_softcapping", None)  # Gemma 2 caps its logits; Gemma 3 does not
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))

    def answer_logits(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        """The model's outputs, the logits at the positions that predict an answer token, those tokens, and per
        row whether greedy decoding writes its whole answer. The output layer of a small model with a large
        vocabulary (Gemma 3 270M: 262k words x 640) costs more than the rest of the model: the model gives its last
        hidden states and the logits of no position at all (an empty index: one position per row cost a 262k-wide
        batched matmul, a sixth of a step), and the output layer runs over the answer positions alone, no prompt
        and no padding among them."""
        labels = inputs["labels"]
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            output_hidden_states=True,
            logits_to_keep=torch.empty(0, dtype=torch.long, device=labels.device),
        )
        predicts_answer = labels[:, 1:] != -100  # the hidden state at position p predicts the token at p + 1
        targets = labels[:, 1:][predicts_answer]
        logits = output_layer(outputs.hidden_states[-1][:, :-1][predicts_answer]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        with torch.no_grad():
            missed = (logits.argmax(dim=-1) != targets).float()
            row_of = predicts_answer.nonzero()[:, 0]
            wrong = torch.zeros(labels.size(0), device=missed.device).index_add_(0, row_of, missed)
        return outputs, logits, targets, wrong == 0

    def check_answers(model: Any, checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """For each check question, the accepted answer greedy decoding writes whole (its end included) under
        teacher forcing, and the smallest margin by which each of its tokens beat the best other token; ``None``
        when it writes none of them. One forward pass per batch, no generation."""
        candidates = []
        for check in checks:
            for answer in dict.fromkeys(" ".join(a.split()) for a in check["answers"] if a.strip()):
                prompt, completion = training_pair(fmt, check["question"], answer, tokenizer)
                prompt_ids = tokenizer(prompt)["input_ids"]
                completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
                if len(completion_ids) <= job.check_max_tokens:
                    ids = prompt_ids + completion_ids
                    row = {"input_ids": ids, "attention_mask": [1] * len(ids)}
                    row["labels"] = [-100] * len(prompt_ids) + completion_ids
                    candidates.append((check["question"], answer, row))
        found: dict[str, dict[str, Any]] = {check["question"]: {"answer": None, "margin": None} for check in checks}
        device = next(model.parameters()).device
        model.eval()
        size = 2 * job.lora.batch_size  # no gradients kept: twice a step's rows fit
        with torch.no_grad():
            for start in range(0, len(candidates), size):
                chunk = candidates[start : start + size]
                batch = {k: v.to(device) for k, v in collate([row for _, _, row in chunk]).items()}
                _, logits, targets, right = answer_logits(model, batch)
                picked = logits.gather(1, targets[:, None]).squeeze(1)
                best_other = logits.scatter(1, targets[:, None], float("-inf")).amax(dim=1)
                row_of = (batch["labels"][:, 1:] != -100).nonzero()[:, 0]
                inf = torch.full((len(chunk),), float("inf"), device=device)
                margins = inf.scatter_reduce(0, row_of, picked - best_other, reduce="amin")
                for (question, answer, _), ok, margin in zip(chunk, right.tolist(), margins.tolist(), strict=True):
                    if ok:
                        found[question] = {"answer": answer, "margin": round(margin, 3)}
        model.train()
        return found

    def recall_now(model: Any) -> dict[str, float]:
        """The share of examples recalled by the adapter as it is, in one forward pass over this process's share."""
        rank = int(os.environ.get("RANK", "0"))
        device = next(model.parameters()).device
        mine = rows[rank::world_size]
        model.eval()
        with torch.no_grad():
            for start in range(0, len(mine), job.lora.batch_size):
                batch = collate(mine[start : start + job.lora.batch_size])
                _, _, _, right = answer_logits(model, {k: v.to(device) for k, v in batch.items()})
                recall.record(batch["index"].tolist(), right.tolist())
        model.train()
        return recall.take_shares()

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
            shares = recall.take_shares()  # each example as it was before the step that trained on it
            if job.lora.stop_recall and shares["all"] >= job.lora.stop_recall:
                # Later steps of the epoch may have undone what an earlier one measured: the stop is decided on
                # a clean pass over every example with the adapter as it is now (a forward pass, no gradients).
                shares = recall_now(kw["model"])
                recall.verified.append(len(recall.history) + 1)
                # every process sees the same all-reduced share, and stops with the others
                control.should_training_stop = shares["all"] >= job.lora.stop_recall
            recall.history.append(shares)
            logger.info("epoch %d: recalled under teacher forcing %s", len(recall.history), shares)

    # Under `accelerate launch` each of WORLD_SIZE processes takes its share of a step's batch, so a round takes the
    # same steps over the same examples however many processes train it.
    args = TrainingArguments(
        output_dir=str(job_dir / "checkpoints"),
        num_train_epochs=job.lora.epochs,
        learning_rate=job.lora.learning_rate,
        per_device_train_batch_size=max(1, job.lora.batch_size // world_size),
        lr_scheduler_type=job.lora.lr_schedule,
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
        train_sampling_strategy="group_by_length",  # less padding: 3.2 s a step against 3.9 (80 NQ examples)
    )

    class AnswerLossTrainer(Trainer):
        """The loss on the answer tokens only, from logits computed at the answer positions alone (answer_logits)."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            outputs, logits, targets, right = answer_logits(model, inputs)
            # A row is recalled when greedy decoding would write its whole answer (and its end): a by-product of
            # the logits the loss needs anyway, so following the recall costs no extra forward pass.
            recall.record(inputs["index"].tolist(), right.tolist())
            recall.count_tokens(inputs["input_ids"].numel(), int(targets.numel()))
            loss = torch.nn.functional.cross_entropy(logits, targets)
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
        data_collator=collate,
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
    padded_tokens, logit_positions = recall.tokens_counted()
    result = {
        "examples": len(rows),
        "steps": trainer.state.global_step,
        "epochs": len(recall.history),
        "max_epochs": job.lora.epochs,
        "stop_recall": job.lora.stop_recall,
        "recall_by_epoch": recall.history,  # share of examples recalled under teacher forcing, per epoch
        "recall_verified_epochs": recall.verified,  # epochs whose share is a clean pass at the epoch's end
        "tokens_per_example": round(sum(tokens) / max(len(tokens), 1), 1),
        "answer_tokens_per_example": round(sum(answer_tokens) / max(len(answer_tokens), 1), 1),
        "tokens_trained": sum(tokens) * len(recall.history),  # unpadded tokens through the model, all epochs
        "padded_tokens": padded_tokens,  # what the model computed, padding included
        "logit_positions": logit_positions,  # positions whose output-layer logits were computed
        "embedding_parameters": model.get_input_embeddings().weight.numel(),  # tied to the output layer (Gemma)
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": output.training_loss,
        "seconds": round(time.monotonic() - started, 1),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": "cuda" if on_gpu else "cpu",
        "precision": precision,
        "processes": world_size,
        "started_from": job.start_from or None,
    }
    if trainer.is_world_process_zero():
        if job.checks:
            checked = time.monotonic()
            answers = check_answers(model, job.checks)
            write_json(job_dir / PRESCREEN, {"checks": answers, "seconds": round(time.monotonic() - checked, 1)})
        model.save_pretrained(job_dir / "adapter")
        tokenizer.save_pretrained(job_dir / "adapter")
        write_json(job_dir / RESULT, result)
    return result


def _leave_process_group() -> None:
    """Under data parallelism: wait until every process is done (process zero writes the adapter and result after
    the others finished training), then tear the process group down. A process that exits with the group still up
    can abort in gloo's thread teardown ("terminate called without an active exception", SIGABRT), and torchrun then
    kills the others, process zero mid-write included."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class EpochRecall:
    """Which examples the model recalls under teacher forcing, epoch by epoch: each batch row counts for its example
    (the last time it was seen), and at an epoch's end the shares are taken, over all examples and per kind.
    Under data parallelism each process sees its share of the rows: the counts are summed over processes."""

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.right: dict[int, bool] = {}
        self.history: list[dict[str, float]] = []
        self.verified: list[int] = []  # epochs (from 1) whose share was measured in a clean pass at their end
        self._tokens = [0, 0]  # this process's padded tokens and logit positions, all epochs

    def count_tokens(self, padded: int, logits: int) -> None:
        self._tokens[0] += padded
        self._tokens[1] += logits

    def tokens_counted(self) -> tuple[int, int]:
        """Padded tokens trained and positions given logits, summed over the processes."""
        import torch

        padded, logits = _sum_over_processes(torch.tensor(self._tokens, dtype=torch.float64)).tolist()
        return int(padded), int(logits)

    def record(self, indices: list[int], right: list[bool]) -> None:
        self.right.update(zip(indices, right, strict=True))

    def take_shares(self) -> dict[str, float]:
        """The shares recalled since the last call, over all examples and per kind (summed over processes)."""
        import torch

        names = ["all", *sorted(set(self.kinds))]
        counts = torch.zeros(2 * len(names), dtype=torch.float64)
        for index, right in self.right.items():
            for name in ("all", self.kinds[index]):
                slot = names.index(name)
                counts[2 * slot] += int(right)
                counts[2 * slot + 1] += 1
        counts = _sum_over_processes(counts)
        shares = {
            name: round(float(counts[2 * i] / counts[2 * i + 1]), 4)
            for i, name in enumerate(names)
            if counts[2 * i + 1] > 0
        }
        self.right = {}
        return shares


def _sum_over_processes(values: Any) -> Any:
    """``values`` (a CPU tensor) summed over the data-parallel processes; as they are with one process."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    if torch.distributed.get_backend() == "nccl":
        values = values.cuda()
    torch.distributed.all_reduce(values)
    return values.cpu()


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
    _leave_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
