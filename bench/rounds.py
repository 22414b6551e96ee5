"""Consecutive learning rounds on the real student: does it keep everything it was taught, at a flat cost per round?

Run: ``.venv/bin/python bench/rounds.py [--recipes fresh,all,warm] [--rounds 3] [--per-round 50] [--home DIR]
[--out FILE]`` (the embedded Gemma 3 270M unless MENTEE_STUDENT_MODEL says otherwise; the reference teacher on
data/nq-open-dev.jsonl; held-out paraphrases from data/near-duplicate-pairs.jsonl; anchors from
data/gemma-3-270m-known.jsonl; ``--home`` as bench/train.py's, whose prepared model and anchors it reuses).

Each recipe starts from the base model with an empty memory and runs ``--rounds`` rounds of ``--per-round`` new
NQ items each (those with a same-answer paraphrase first, as bench/train.py picks them):

1. the round's questions are asked once through mentee (the teacher answers, the memory keeps the answers);
2. one round runs (training, gate, hot-swap), timed, with the gate's figures (new-item recall, retention of a
   sample of every earlier round's items, anchors against the base model, held-out paraphrases);
3. as served after the round, memory and teacher off: recall of *everything taught so far*, by the round that
   taught it, and of the held-out paraphrases of all of it.

Recipes (``RECIPES``): ``fresh``, a new adapter each round on the new items + a replay sample of
``train_replay_per_new`` earlier items per new one (today's default); ``all``, a new adapter on the new items +
every earlier item (the quality bound; its cost grows with all that was taught); ``warm``, the next adapter
continues the last passed one on the new items + the same fixed-size replay sample; ``stack``, a new adapter per
round on its new items and anchors only, served beside the earlier ones (each answers the items it learned), and
every ``train_stack_max`` rounds one consolidating round on everything. Every finished round is
appended to ``--out`` (JSON Lines) as it ends; one final JSON line on stdout (``--summarize FILE`` prints it again
from FILE's rounds, ``--plot PNG`` with it draws them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import train as train_bench  # bench/train.py: the same home, questions and reset

RECIPES: dict[str, dict[str, Any]] = {
    "fresh": {"train_recipe": "fresh"},
    "all": {"train_recipe": "fresh", "train_replay_per_new": 100.0},  # every earlier item (up to 100 per new one)
    "warm": {"train_recipe": "warm"},
    # one adapter per round, served side by side; three at most here, so a run of 4 rounds shows a consolidation
    "stack": {"train_recipe": "stack", "train_stack_max": 3},
}
PROBE_CONCURRENCY = 8  # student-alone questions in flight at once after a round (vLLM batches them)


def run_recipe(
    mentee: Any,
    settings: Any,
    recipe: str,
    rows: list[dict[str, Any]],
    paraphrases: dict[str, dict[str, Any]],
    *,
    rounds: int,
    per_round: int,
    out: Path | None,
) -> list[dict[str, Any]]:
    from mentee.server.core.answers import is_correct
    from mentee.server.learning.gate import ask_each
    from mentee.server.serving.router import NoSourceError, Switches

    train_bench.reset(mentee)
    mentee.learner.settings = settings.model_copy(update=RECIPES[recipe])
    alone = Switches(memory=False, teacher=False, learn=False)

    def student_alone(question: str) -> str:
        try:
            return mentee.answer(question, alone).text
        except NoSourceError:
            return ""

    def right(items: list[tuple[str, list[str]]]) -> list[bool]:
        said = ask_each(student_alone, [q for q, _ in items], concurrency=PROBE_CONCURRENCY)
        return [is_correct(text, answers) for text, (_, answers) in zip(said, items, strict=True)]

    def share(marks: list[bool]) -> float | None:
        return round(sum(marks) / len(marks), 4) if marks else None

    records = []
    taught: list[tuple[int, dict[str, Any]]] = []  # (round number, row)
    for number in range(1, rounds + 1):
        batch = rows[(number - 1) * per_round : number * per_round]
        train_bench.log(f"{recipe} round {number}: teaching {len(batch)}")
        from_teacher = sum(mentee.answer(row["question"]).source == "teacher" for row in batch)
        taught += [(number, row) for row in batch]
        phases: dict[str, float] = {}
        started = time.monotonic()
        outcome = mentee.learner.run_round(progress=lambda update, phases=phases: first_of_phase(update, phases))
        round_s = round(time.monotonic() - started, 1)
        gate = {k: v for k, v in (outcome.gate or {}).items() if k not in ("misses", "prescreen")}
        marks = right([(r["question"], r["answers"]) for _, r in taught])
        by_round = {
            str(k): share([m for (n, _), m in zip(taught, marks, strict=True) if n == k]) for k in range(1, number + 1)
        }
        held_out = [paraphrases[r["question"]] for _, r in taught if r["question"] in paraphrases]
        record = {
            "recipe": recipe,
            "round": number,
            "state": outcome.state,
            "error": outcome.error,
            "adapter": outcome.adapter,
            "new_items": len(batch),
            "taught_by_teacher": from_teacher,
            "taught_so_far": len(taught),
            "round_s": round_s,
            "training_s": outcome.training.get("seconds"),
            "gate_s": round(phases["done"] - phases["gate"], 1) if "gate" in phases and "done" in phases else None,
            "examples": outcome.training.get("examples"),
            "epochs": outcome.training.get("epochs"),
            "started_from": outcome.training.get("started_from"),
            "served_taught_recall": share(marks),
            "served_recall_by_round": by_round,
            "served_paraphrase_recall": share(right([(p["question"], p["answers"]) for p in held_out])),
            "paraphrases_asked": len(held_out),
            "gate": gate,
            "settings": {k: getattr(mentee.learner.settings, k) for k in (*RECIPES[recipe], "train_replay_per_new")},
        }
        train_bench.log(f"{recipe} round {number}: {json.dumps(record)[:700]}")
        records.append(record)
        if out is not None:
            with out.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
    return records


def first_of_phase(update: dict[str, Any], phases: dict[str, float]) -> None:
    """Note when each phase of a round began, and log it."""
    phase = update.get("phase", "")
    if phase not in phases:
        phases[phase] = time.monotonic()
        train_bench.log(f"  {phase} {json.dumps({k: v for k, v in update.items() if k != 'phase'})[:160]}")


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    def anchors_of_base(gate: dict[str, Any]) -> float | None:
        if gate.get("anchor_accuracy") is None or not gate.get("base_anchor_accuracy"):
            return None
        return round(gate["anchor_accuracy"] / gate["base_anchor_accuracy"], 4)

    recipes: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        recipes.setdefault(r["recipe"], []).append(
            {
                "round": r["round"],
                "state": r["state"],
                "taught_so_far": r["taught_so_far"],
                "served_taught_recall": r["served_taught_recall"],
                "served_recall_by_round": r["served_recall_by_round"],
                "served_paraphrase_recall": r["served_paraphrase_recall"],
                "gate_new_recall": r["gate"].get("new_recall"),
                "gate_retention": r["gate"].get("retention"),
                "anchors_of_base": anchors_of_base(r["gate"]),
                "examples": r["examples"],
                "round_s": r["round_s"],
                "training_s": r["training_s"],
            }
        )
    return {
        "bench": "rounds",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "recipes": recipes,
        "last_over_first_round_s": {
            name: round(rows[-1]["round_s"] / rows[0]["round_s"], 2) for name, rows in recipes.items() if len(rows) > 1
        },
    }


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Per recipe and round: the student alone on everything taught so far, on the held-out paraphrases, the
    gate's anchors against the base model (left), and the round's time (right)."""
    import matplotlib

    matplotlib.use("Agg")  # a file only: no display here
    import matplotlib.pyplot as plt

    summary = summarize(records)["recipes"]
    figure, (quality, cost) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in summary.items():
        x = [r["round"] for r in rows]
        line = quality.plot(x, [r["served_taught_recall"] for r in rows], marker="o", label=f"{name}: all taught")[0]
        quality.plot(
            x, [r["served_paraphrase_recall"] for r in rows], marker="^", linestyle="--", color=line.get_color(),
            label=f"{name}: paraphrases",
        )  # fmt: skip
        cost.plot(x, [r["round_s"] for r in rows], marker="o", color=line.get_color(), label=name)
    rounds = range(1, max(r["round"] for rows in summary.values() for r in rows) + 1)
    for axis in (quality, cost):
        axis.set_xticks(list(rounds))
    quality.set(xlabel="round", ylabel="student alone, as served", ylim=(0, 1.05), title="What it still knows")
    cost.set(xlabel="round", ylabel="seconds", title="A round's time", ylim=(0, None))
    quality.legend(loc="lower left", fontsize=8)
    cost.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # unwinds, so the student's vLLM is stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="fresh,all,warm", help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--rounds", type=int, default=3, help="consecutive rounds per recipe")
    parser.add_argument("--per-round", type=int, default=50, help="new items per round")
    parser.add_argument("--home", type=Path, help="a mentee home to (re)use; default: a temporary one")
    parser.add_argument("--out", type=Path, help="append each finished round here (JSON Lines)")
    parser.add_argument("--summarize", type=Path, help="print the final JSON line of the rounds in this file, and stop")
    parser.add_argument("--plot", type=Path, help="with --summarize: also draw the rounds into this PNG")
    args = parser.parse_args()
    if args.summarize is not None:
        records = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
        if args.plot is not None:
            plot(records, args.plot)
        print(json.dumps(summarize(records)))
        return
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown or args.rounds < 1 or args.per_round < 1:
        parser.error(f"unknown recipe {unknown[0]!r}" if unknown else "--rounds and --per-round must be at least 1")
    from mentee.server.service import Mentee

    with tempfile.TemporaryDirectory(prefix="mentee-bench-rounds-") as scratch:
        home = (args.home or Path(scratch)).absolute()
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home / "torchinductor"))
        settings = train_bench.prepare(home)
        rows, paraphrases = train_bench.pick_questions(args.rounds * args.per_round)
        records = []
        with Mentee(settings) as mentee:
            for recipe in recipes:
                records += run_recipe(
                    mentee,
                    settings,
                    recipe,
                    rows,
                    paraphrases,
                    rounds=args.rounds,
                    per_round=args.per_round,
                    out=args.out,
                )
    print(json.dumps(summarize(records)))


if __name__ == "__main__":
    main()
