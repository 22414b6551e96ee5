"""An evaluation's report (shares, accuracy, teacher calls and cost avoided, the learning curve) and its plots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .run import SOURCES, EvalOptions, EvalResult


def summarize_turns(turns: Sequence[dict[str, Any]], options: EvalOptions) -> dict[str, Any]:
    """Shares, accuracy, teacher use and what was avoided, for a run of turns."""
    count = len(turns)
    by_source = Counter(t["source"] for t in turns)
    correct_by_source = Counter(t["source"] for t in turns if t["correct"])

    def cost(tokens_in: float, tokens_out: float) -> float:
        return (tokens_in * options.price_in_per_mtok + tokens_out * options.price_out_per_mtok) / 1e6

    teacher_turns = [t for t in turns if t["source"] == "teacher"]
    used_in = sum(t["tokens_in"] for t in teacher_turns)
    used_out = sum(t["tokens_out"] for t in teacher_turns)
    summary: dict[str, Any] = {
        "turns": count,
        "share": {s: round(by_source[s] / count, 4) if count else 0.0 for s in SOURCES},
        "errors": by_source["error"],
        "accuracy": round(sum(t["correct"] for t in turns) / count, 4) if count else None,
        "accuracy_by_source": {
            s: round(correct_by_source[s] / by_source[s], 4) if by_source[s] else None for s in SOURCES
        },
        "teacher_calls": len(teacher_turns),
        "teacher_calls_avoided": count - len(teacher_turns),
        "teacher_tokens": used_in + used_out,
        "teacher_tokens_in_out": [used_in, used_out],
        "teacher_cost": round(cost(used_in, used_out), 6),
    }
    alone = [t["teacher_alone"] for t in turns if "teacher_alone" in t]
    if alone and len(alone) == count:
        all_in = sum(a["tokens_in"] for a in alone)
        all_out = sum(a["tokens_out"] for a in alone)
        summary["always_teacher"] = {
            "accuracy": round(sum(a["correct"] for a in alone) / count, 4) if count else None,
            "teacher_calls": count,
            "teacher_tokens": all_in + all_out,
            "teacher_tokens_in_out": [all_in, all_out],
            "teacher_cost": round(cost(all_in, all_out), 6),
        }
        # What the turns mentee answered without the teacher would have cost an always-teacher deployment.
        spared = [t["teacher_alone"] for t in turns if t["source"] != "teacher"]
        spared_in, spared_out = sum(a["tokens_in"] for a in spared), sum(a["tokens_out"] for a in spared)
        summary["teacher_tokens_avoided"] = spared_in + spared_out
        summary["cost_avoided"] = round(cost(spared_in, spared_out), 6)
    return summary


def build_report(result: EvalResult, options: EvalOptions, setup: dict[str, Any]) -> dict[str, Any]:
    turns = result.turns
    buckets = []
    for start in range(0, len(turns), options.bucket):
        chunk = turns[start : start + options.bucket]
        buckets.append({"first_turn": start, "last_turn": start + len(chunk) - 1, **summarize_turns(chunk, options)})
    rounds = [asdict(r) for r in result.rounds]
    last = result.rounds[-1] if result.rounds else None
    overall = summarize_turns(turns, options)
    headline = {
        "turns": len(turns),
        "teacher_share_last_bucket": buckets[-1]["share"]["teacher"] if buckets else None,
        "teacher_share_overall": overall["share"]["teacher"],
        "accuracy": overall["accuracy"],
        "always_teacher_accuracy": (overall.get("always_teacher") or {}).get("accuracy"),
        "teacher_calls_per_1000_turns": round(1000 * overall["teacher_calls"] / len(turns), 1) if turns else None,
        "rounds": len(result.rounds),
        "rounds_passed": sum(1 for r in result.rounds if r.state == "passed"),
        "student_alone_taught_recall_after_last_round": last.taught_accuracy if last else None,
        "anchor_accuracy_before": result.anchors_before,
        "anchor_accuracy_after_last_round": last.anchor_accuracy if last else None,
    }
    return {
        "headline": headline,
        "setup": setup,
        "overall": overall,
        "buckets": buckets,
        "rounds": rounds,
        "learning_curve": [
            {
                "round": r.number,
                "after_turn": r.after_turn,
                "taught_so_far": r.taught_so_far,
                "taught_accuracy": r.taught_accuracy,
                "anchor_accuracy": r.anchor_accuracy,
                "state": r.state,
                "seconds": r.seconds,
                # the gate's figures: its sample of earlier rounds' items, and the held-out paraphrases it asked
                "gate_retention": (r.gate or {}).get("retention"),
                "gate_retention_by_round": {
                    version: figures.get("recall")
                    for version, figures in ((r.gate or {}).get("retention_by_round") or {}).items()
                },
                "gate_paraphrase_recall": (r.gate or {}).get("paraphrase_recall"),
                "gate_retained_paraphrase_recall": (r.gate or {}).get("retained_paraphrase_recall"),
            }
            for r in result.rounds
        ],
        "seconds": round(result.seconds, 1),
    }


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """``sources.png`` (share by source per bucket) and, after rounds, ``learning-curve.png``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and no GUI toolkit is needed
    import matplotlib.pyplot as plt

    written = []
    buckets = report["buckets"]
    if buckets:
        x = [b["last_turn"] + 1 for b in buckets]
        figure, axis = plt.subplots(figsize=(7, 4))
        axis.stackplot(
            x,
            *[[b["share"][s] for b in buckets] for s in SOURCES],
            labels=list(SOURCES),
            colors=["#4c9f70", "#3d7ebf", "#d08c2e"],
            alpha=0.85,
        )
        axis.set(xlabel="turns replayed", ylabel="share of answers", ylim=(0, 1), title="Who answered, per bucket")
        written.append(_save(plt, figure, axis, folder / "sources.png", "upper right"))
    curve = report["learning_curve"]
    if curve:
        figure, axis = plt.subplots(figsize=(7, 4))
        x = [point["after_turn"] for point in curve]
        axis.plot(x, [p["taught_accuracy"] for p in curve], marker="o", label="taught so far (student alone)")
        if any(p["anchor_accuracy"] is not None for p in curve):
            axis.plot(x, [p["anchor_accuracy"] for p in curve], marker="s", label="anchors (forgetting)")
        if any(p.get("gate_paraphrase_recall") is not None for p in curve):
            paraphrases = [p.get("gate_paraphrase_recall") for p in curve]
            axis.plot(x, paraphrases, marker="^", label="held-out paraphrases (gate)")
        if any(p.get("seconds") for p in curve):  # a round's cost, on its own axis: it should stay flat
            seconds = axis.twinx()
            seconds.bar(x, [p.get("seconds") or 0 for p in curve], width=max(x) * 0.03, color="grey", alpha=0.3)
            seconds.set_ylabel("round time (s, bars)")
        before = report["headline"]["anchor_accuracy_before"]
        if before is not None:
            axis.axhline(before, linestyle="--", color="grey", label="anchors before any round")
        axis.set(xlabel="turns replayed", ylabel="accuracy", ylim=(0, 1.05), title="Learning curve")
        written.append(_save(plt, figure, axis, folder / "learning-curve.png", "lower right"))
    return written


def _save(plt: Any, figure: Any, axis: Any, path: Path, legend: str) -> Path:
    axis.legend(loc=legend)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
