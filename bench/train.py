"""Learning rounds on the real student: round time against new items, distillation set-ups, hot-swap, forgetting.

Run: ``.venv/bin/python bench/train.py [--sizes 25,50,100,200] [--setups answer,consistency,paraphrase,rationale]
[--setup-size 25] [--home DIR] [--out FILE]`` (the embedded Gemma 3 270M unless MENTEE_STUDENT_MODEL says
otherwise; the reference teacher on data/nq-open-dev.jsonl; the gate's held-out paraphrases from
data/near-duplicate-pairs.jsonl; anchors from data/gemma-3-270m-known.jsonl). Each trial starts from the base
model with an empty memory:

1. the trial's NQ questions (those with a same-answer paraphrase in the pairs file first) are asked once through
   mentee: the teacher answers and the memory keeps the answers;
2. one round runs with the trial's distillation set-up (training, gate, hot-swap): its time, training time and
   the gate's figures (taught recall, held-out paraphrase recall, held-out anchor accuracy against the base model);
3. a hot-swap under load: while requests stream through mentee (student alone), the adapter is unloaded from vLLM
   and activated again (loaded under its name, router switched): the swap's latency and the requests that failed;
4. as served after the round, memory and teacher off: recall of the taught questions and of their paraphrases.

Each trial also states its training against the machine: epochs run (a round stops at ``train_stop_recall``) and
the recall per epoch, tokens per example and per round, the floating-point work (6 x parameters a token passes
through x tokens, plus the output layer over the answer positions) and its rate as a share of this CPU's torch
matmul rate, measured at the start of the run before vLLM starts.

Set-ups are compared at ``--setup-size`` new items; sizes with the first set-up (``answer``). A set-up the
teacher cannot run (the reference teacher writes no rationales) is reported as such. Progress on stderr; every
finished trial is appended to ``--out`` (JSON Lines) as it ends; one final JSON line on stdout (``--summarize
FILE`` prints it again from the trials in FILE, e.g. of runs split over several sessions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mentee.server.student.models import embedded_known_questions

REPO = Path(__file__).resolve().parent.parent
NQ = REPO / "data" / "nq-open-dev.jsonl"
PAIRS = REPO / "data" / "near-duplicate-pairs.jsonl"
KNOWN = embedded_known_questions()
MENTEE = str(Path(sys.executable).parent / "mentee")
CLIENTS = 3  # concurrent clients asking while an adapter is swapped in


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pick_questions(count: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``count`` NQ rows, those with a same-answer paraphrase first, and the paraphrase rows by question."""
    rows = [json.loads(line) for line in NQ.read_text().splitlines() if line.strip()]
    by_question = {r["question"]: r for r in rows}
    paraphrases: dict[str, dict[str, Any]] = {}
    for line in PAIRS.read_text().splitlines():
        pair = json.loads(line)
        if pair["set"] == "nq-open-dev" and pair["same_answer"] and pair["q1"] in by_question:
            paraphrases.setdefault(pair["q1"], {"question": pair["q2"], "answers": pair["a2"] + pair["a1"]})
    taken = {p["question"] for p in paraphrases.values()}  # a paraphrase is never itself taught
    chosen = [by_question[q] for q in paraphrases if q not in taken]
    chosen += [r for r in rows if r["question"] not in taken and r["question"] not in paraphrases]
    return chosen[:count], paraphrases


def matmul_rate(seconds: float = 2.0) -> dict[str, Any]:
    """This CPU's fp32 matrix-multiply rate in GFLOP/s, with torch's threads as the trainer has them: at the shape of
    a round's training step (8 rows x ~30 tokens through Gemma 3 270M's 640 -> 2048 projections) and at a square
    1024 one, each the best of repeated timings over ``seconds``."""
    import torch

    rates = {}
    for name, (m, k, n) in {"step_240x640x2048": (240, 640, 2048), "square_1024": (1024, 1024, 1024)}.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            torch.mm(a, b)  # warm-up
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            for _ in range(10):
                torch.mm(a, b)
            best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - started))
        rates[name] = round(best / 1e9, 1)
    return {"gflops": rates, "threads": torch.get_num_threads(), "torch": torch.__version__}


def training_work(training: dict[str, Any], matmul: dict[str, Any]) -> dict[str, Any]:
    """A round's training against the machine: tokens trained, the floating-point work (6 x the parameters a token
    passes through x tokens, padding included, plus 6 x the output layer x the answer positions, the only ones given
    logits), and that work's rate as a share of this CPU's matmul rate at the training step's shape."""
    if not training.get("tokens_trained"):
        return {}
    body = training["total_parameters"] - training["embedding_parameters"]  # the embedding lookup multiplies nothing
    flops = 6 * body * training["padded_tokens"] + 6 * training["embedding_parameters"] * training["logit_positions"]
    rate = flops / training["seconds"] / 1e9
    peak = matmul["gflops"]["step_240x640x2048"]
    return {
        "epochs": training["epochs"],
        "max_epochs": training.get("max_epochs"),
        "recall_by_epoch": [shares["all"] for shares in training.get("recall_by_epoch", [])],
        "tokens_per_example": training["tokens_per_example"],
        "answer_tokens_per_example": training["answer_tokens_per_example"],
        "tokens_trained": training["tokens_trained"],
        "padded_tokens": training["padded_tokens"],
        "tflop": round(flops / 1e12, 2),
        "gflops": round(rate, 1),
        "machine_share": round(rate / peak, 3),
    }


def reset(mentee: Any) -> None:
    """An empty memory and the base model served, as at the start of a deployment."""
    for record in mentee.memory.list(limit=10**9):
        mentee.memory.delete(record.id)
    mentee.learner.activate(None, reason="bench reset")


def run_trial(
    mentee: Any, base_settings: Any, setup: str, rows: list[dict[str, Any]], paraphrases: dict, matmul: dict
) -> dict:
    from mentee.server.core.answers import is_correct
    from mentee.server.serving.router import NoSourceError, Switches

    teacher = mentee.guarded_teacher
    if setup == "rationale" and teacher.explain(rows[0]["question"], rows[0]["answers"][0]) is None:
        note = f"not run: the teacher {teacher.name} writes no rationales (a chat teacher does)"
        log(f"trial {setup}: {note}")
        return {"setup": setup, "new_items": len(rows), "state": "not run", "round_s": None, "gate": {}, "note": note}
    reset(mentee)
    mentee.learner.settings = base_settings.model_copy(update={"distillation": setup})
    log(f"trial {setup} x {len(rows)}: teaching")
    taught = sum(mentee.answer(row["question"]).source == "teacher" for row in rows)
    phases: dict[str, float] = {}

    def progress(update: dict[str, Any]) -> None:
        phase = update.get("phase", "")
        if phase not in phases:
            phases[phase] = time.monotonic()
            log(f"  round: {phase} {json.dumps({k: v for k, v in update.items() if k != 'phase'})[:160]}")

    started = time.monotonic()
    outcome = mentee.learner.run_round(progress=progress)
    result: dict[str, Any] = {
        "setup": setup,
        "new_items": len(rows),
        "taught_by_teacher": taught,
        "state": outcome.state,
        "error": outcome.error,
        "round_s": round(time.monotonic() - started, 1),
        "training_s": outcome.training.get("seconds"),
        "examples": outcome.training.get("examples"),
        "final_loss": outcome.training.get("final_loss"),
        "gate_s": round(phases["done"] - phases["gate"], 1) if "gate" in phases and "done" in phases else None,
        "settings": {
            name: getattr(mentee.learner.settings, name)
            for name in (
                "train_learning_rate",
                "train_lr_schedule",
                "train_epochs",
                "train_stop_recall",
                "train_batch_size",
                "train_few_shot",
                "gate_concurrency",
                "gate_prescreen_margin",
                "gate_prescreen_verify",
            )
        },
        "work": training_work(outcome.training, matmul),
        "matmul": matmul,
        "distillation": (outcome.data or {}).get("distillation"),
        "gate": {k: v for k, v in (outcome.gate or {}).items() if k != "misses"},
    }
    if outcome.state != "passed":
        return result
    result["swap"] = swap_under_load(mentee, outcome.adapter, [r["question"] for r in rows[:10]])
    alone = Switches(memory=False, teacher=False, learn=False)

    def recall(items: list[tuple[str, list[str]]]) -> float | None:
        right = 0
        for question, answers in items:
            with contextlib.suppress(NoSourceError):
                right += is_correct(mentee.answer(question, alone).text, answers)
        return round(right / len(items), 4) if items else None

    result["served_taught_recall"] = recall([(r["question"], r["answers"]) for r in rows])
    held_out = [paraphrases[r["question"]] for r in rows if r["question"] in paraphrases]
    result["served_paraphrase_recall"] = recall([(p["question"], p["answers"]) for p in held_out])
    result["paraphrases_asked"] = len(held_out)
    return result


def swap_under_load(mentee: Any, version: str, questions: list[str]) -> dict[str, Any]:
    """Unload the adapter, then activate it again while ``CLIENTS`` clients keep asking: the swap's latency and the
    requests that failed."""
    from mentee.server.serving.router import NoSourceError, Switches

    alone = Switches(memory=False, teacher=False, learn=False)
    stop = threading.Event()
    counts = {"requests": 0, "failed": 0, "empty": 0}
    errors: list[str] = []

    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    def client() -> None:
        number = 0
        while not stop.is_set():
            try:
                mentee.answer(questions[number % len(questions)], alone)
            except NoSourceError:
                count("empty")  # the student said nothing usable: an answer, not a failure
            except Exception as e:  # a failed request
                count("failed")
                errors.append(repr(e)[:200])
            count("requests")
            number += 1

    adapter = mentee.adapters.get(version)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    mentee.student.unload_adapter(adapter.served_name)
    mentee.learner.activate(None, reason="bench swap")
    started = time.monotonic()
    mentee.learner.activate(version, reason="bench swap")  # loads it into vLLM under its name, switches the router
    latency = time.monotonic() - started
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return {"latency_ms": round(latency * 1000, 1), **counts, "errors": errors[:5]}


def main() -> None:
    # Ctrl-C and `kill` unwind normally, so the student's vLLM is stopped on the way out (a shell's background job
    # starts with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,50,100,200", help="new items per round, comma-separated")
    parser.add_argument("--setups", default="answer,consistency,paraphrase,rationale", help="distillation set-ups")
    parser.add_argument("--setup-size", type=int, default=25, help="new items in the set-up comparison")
    parser.add_argument("--home", type=Path, help="a mentee home to (re)use; default: a temporary one")
    parser.add_argument("--out", type=Path, help="append each finished trial here (JSON Lines)")
    parser.add_argument(
        "--summarize", type=Path, help="print the final JSON line of the trials in this --out file, and stop"
    )
    args = parser.parse_args()
    if args.summarize is not None:
        trials = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
        print(json.dumps(summarize(trials)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="mentee-bench-train-") as scratch:
        home = (args.home or Path(scratch)).absolute()
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home / "torchinductor"))
        results = run(home, sizes, setups, args.setup_size, args.out)
    print(json.dumps(results))


def prepare(home: Path) -> Any:
    """The settings of a bench home: the embedded student (prepared once, or MENTEE_STUDENT_MODEL), its anchors
    (built once from data/gemma-3-270m-known.jsonl), the reference teacher on NQ, the gate's held-out paraphrases,
    and every question sent to the teacher (the base student never answers NQ alone)."""
    from mentee.server.core.config import load_settings
    from mentee.server.student.models import prepare_embedded_student

    model = Path(os.environ["MENTEE_STUDENT_MODEL"]) if os.environ.get("MENTEE_STUDENT_MODEL") else None
    model = model or prepare_embedded_student(home / "models")
    if not (home / "anchors.json").is_file():
        log("building anchors from data/gemma-3-270m-known.jsonl")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}
        subprocess.run(
            [MENTEE, "anchors", "build", str(KNOWN), "--check-share", "0.6"],
            env={**env, "MENTEE_HOME": str(home), "MENTEE_STUDENT_MODEL": str(model)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return load_settings(
        home=home,
        student_model=str(model),
        teacher_qa_file=str(NQ),
        gate_paraphrase_file=str(PAIRS),
        confidence_threshold=1.0,
        recalibrate_after_round=False,
    )


def run(home: Path, sizes: list[int], setups: list[str], setup_size: int, out: Path | None) -> dict[str, Any]:
    from mentee.server.service import Mentee

    settings = prepare(home)
    matmul = matmul_rate()  # before vLLM starts: nothing else runs beside it
    log(f"matmul: {matmul}")
    rows, paraphrases = pick_questions(max([*sizes, setup_size]))
    trials: list[dict[str, Any]] = []
    plan = [(setup, setup_size) for setup in setups] + [(setups[0], n) for n in sizes if n != setup_size]
    with Mentee(settings) as mentee:
        for setup, size in plan:
            trial = run_trial(mentee, settings, setup, rows[:size], paraphrases, matmul)
            log(f"trial {setup} x {size}: {json.dumps(trial)[:600]}")
            trials.append(trial)
            if out is not None:
                with out.open("a") as handle:
                    handle.write(json.dumps(trial) + "\n")
    return summarize(trials)


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    swaps = [t["swap"] for t in trials if "swap" in t]
    return {
        "bench": "train",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "round_s_by_new_items": {str(t["new_items"]): t["round_s"] for t in trials if t["setup"] == trials[0]["setup"]},
        "by_new_items": {
            str(t["new_items"]): {
                "round_s": t["round_s"],
                "training_s": t.get("training_s"),
                "gate_s": t.get("gate_s"),
                "swap_ms": (t.get("swap") or {}).get("latency_ms"),
                "taught_recall": t["gate"].get("new_recall"),
                "paraphrase_recall": t["gate"].get("paraphrase_recall"),
                "anchors_of_base": (
                    round(t["gate"]["anchor_accuracy"] / t["gate"]["base_anchor_accuracy"], 4)
                    if t["gate"].get("anchor_accuracy") is not None and t["gate"].get("base_anchor_accuracy")
                    else None
                ),
                **(t.get("work") or {}),
            }
            for t in trials
            if t["setup"] == trials[0]["setup"]
        },
        "matmul": next((t["matmul"] for t in trials if "matmul" in t), None),
        "setups": {
            t["setup"]: {
                "state": t["state"],
                "round_s": t["round_s"],
                "examples": t.get("examples"),
                "taught_recall": t["gate"].get("new_recall"),
                "paraphrase_recall": t["gate"].get("paraphrase_recall"),
                "anchor_accuracy": t["gate"].get("anchor_accuracy"),
                "base_anchor_accuracy": t["gate"].get("base_anchor_accuracy"),
                "served_taught_recall": t.get("served_taught_recall"),
                "served_paraphrase_recall": t.get("served_paraphrase_recall"),
                "notes": (t.get("distillation") or {}).get("notes") or t.get("note"),
            }
            for t in trials
            if t["new_items"] == trials[0]["new_items"]
        },
        "swap_latency_ms_median": statistics.median(s["latency_ms"] for s in swaps) if swaps else None,
        "swap_requests": sum(s["requests"] for s in swaps),
        "swap_failed_requests": sum(s["failed"] for s in swaps),
        "trials": trials,
    }


if __name__ == "__main__":
    main()
