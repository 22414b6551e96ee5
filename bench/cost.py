"""The cost model, from a `mentee eval` report: teacher calls per 1,000 turns against an always-teacher deployment,
and how many turns it takes for what the teacher was spared to pay for a learning round.

Run: ``.venv/bin/python bench/cost.py EVAL_FOLDER [--price-in P] [--price-out P] [--train-price-per-hour P]
[--round-seconds S]``
(EVAL_FOLDER holds ``report.json`` and ``turns.jsonl`` from ``mentee eval``; prices default to the
configuration's ``teacher_price_in_per_mtok``, ``teacher_price_out_per_mtok`` and ``train_price_per_hour``).

- teacher calls per 1,000 turns: mentee overall and in the last bucket (steady state) against 1,000;
- teacher cost per 1,000 turns, mentee (last bucket) against always-teacher, at the given token prices;
- a round's cost: its measured seconds (mean of the eval's rounds, or ``--round-seconds``) x the training
  machine's hourly price;
- break-even: turns at the steady-state saving per turn that pay for one round; and, replaying the eval's own
  turns, the first turn at which the cost spared so far covered every round run so far (or null).

Token counts are the teacher's own usage figures (the reference teacher counts words). One final JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def model(
    report: dict[str, Any],
    turns: list[dict[str, Any]],
    price_in: float,
    price_out: float,
    hourly: float,
    round_seconds_override: float | None = None,
) -> dict:
    def cost(tokens_in: float, tokens_out: float) -> float:
        return (tokens_in * price_in + tokens_out * price_out) / 1e6

    count = len(turns)
    if count == 0:
        raise SystemExit("the eval report has no turns")
    if not all("teacher_alone" in t for t in turns):
        raise SystemExit("the eval ran with --no-baseline: no always-teacher figures to compare with")
    last = report["buckets"][-1]
    last_turns = turns[last["first_turn"] : last["last_turn"] + 1]

    def teacher_cost(chunk: list[dict[str, Any]]) -> float:
        return sum(cost(t["tokens_in"], t["tokens_out"]) for t in chunk if t["source"] == "teacher")

    def always_cost(chunk: list[dict[str, Any]]) -> float:
        return sum(cost(t["teacher_alone"]["tokens_in"], t["teacher_alone"]["tokens_out"]) for t in chunk)

    saving_per_turn = (always_cost(last_turns) - teacher_cost(last_turns)) / len(last_turns)
    round_seconds = [r["seconds"] for r in report["rounds"] if r.get("seconds")]
    if round_seconds_override is not None and report["rounds"]:
        round_seconds = [round_seconds_override]
    round_cost = statistics.mean(round_seconds) / 3600 * hourly if round_seconds else None

    # Replay: the cost spared so far (always-teacher minus mentee's teacher) against the rounds run so far.
    starts = sorted(r["after_turn"] for r in report["rounds"])
    paid_back_at = None
    spared = 0.0
    for index, turn in enumerate(turns):
        spared += cost(turn["teacher_alone"]["tokens_in"], turn["teacher_alone"]["tokens_out"])
        if turn["source"] == "teacher":
            spared -= cost(turn["tokens_in"], turn["tokens_out"])
        spent = sum(1 for s in starts if s <= index + 1) * (round_cost or 0.0)
        if starts and index + 1 >= starts[-1] and spared >= spent:
            paid_back_at = index + 1
            break
    return {
        "bench": "cost",
        "turns": count,
        "prices": {"teacher_in_per_mtok": price_in, "teacher_out_per_mtok": price_out, "train_per_hour": hourly},
        "teacher_calls_per_1000_turns": round(1000 * report["overall"]["teacher_calls"] / count, 1),
        "teacher_calls_per_1000_turns_last_bucket": round(1000 * last["teacher_calls"] / max(last["turns"], 1), 1),
        "always_teacher_calls_per_1000_turns": 1000.0,
        "teacher_cost_per_1000_turns_last_bucket": round(1000 * teacher_cost(last_turns) / len(last_turns), 6),
        "always_teacher_cost_per_1000_turns": round(1000 * always_cost(turns) / count, 6),
        "saving_per_turn_steady": round(saving_per_turn, 8),
        "rounds": len(report["rounds"]),
        "round_seconds_mean": round(statistics.mean(round_seconds), 1) if round_seconds else None,
        "round_cost": round(round_cost, 6) if round_cost is not None else None,
        "break_even_turns_per_round": (
            round(round_cost / saving_per_turn) if round_cost is not None and saving_per_turn > 0 else None
        ),
        "all_rounds_paid_back_at_turn": paid_back_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_folder", type=Path, help="a `mentee eval --out` folder (report.json, turns.jsonl)")
    parser.add_argument("--price-in", type=float, help="teacher price per million input tokens")
    parser.add_argument("--price-out", type=float, help="teacher price per million output tokens")
    parser.add_argument("--train-price-per-hour", type=float, help="price of an hour of the training machine")
    parser.add_argument(
        "--round-seconds",
        type=float,
        help="a round's seconds, instead of the mean the eval measured (e.g. when the eval was paused mid-round)",
    )
    args = parser.parse_args()
    for name in ("price_in", "price_out", "train_price_per_hour", "round_seconds"):
        if (getattr(args, name) or 0) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    report_path, turns_path = args.eval_folder / "report.json", args.eval_folder / "turns.jsonl"
    if not report_path.is_file() or not turns_path.is_file():
        parser.error(f"{args.eval_folder} holds no report.json and turns.jsonl (run `mentee eval --out` first)")
    from mentee.server.core.config import load_settings

    settings = load_settings()
    price_in = settings.teacher_price_in_per_mtok if args.price_in is None else args.price_in
    price_out = settings.teacher_price_out_per_mtok if args.price_out is None else args.price_out
    hourly = settings.train_price_per_hour if args.train_price_per_hour is None else args.train_price_per_hour
    report = json.loads(report_path.read_text())
    turns = [json.loads(line) for line in turns_path.read_text().splitlines() if line.strip()]
    figures = model(report, turns, price_in, price_out, hourly, args.round_seconds)
    print(json.dumps({"eval": str(args.eval_folder), **figures}))


if __name__ == "__main__":
    main()
