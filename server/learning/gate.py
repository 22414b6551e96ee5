"""The gate: an adapter is served only if the student, alone, proves it learned and forgot nothing.

Measured with the student as it will be served (memory and teacher off): recall of the newly taught items,
retention of everything taught before (a sample stratified by the round that taught each item, so the reason can
name the rounds forgotten), and accuracy on held-out *check* anchors (questions the base model answers correctly,
never trained on) against the base model's accuracy on them — the forgetting check. Paraphrases of taught
questions count where the data has them. Every figure and the verdict go into the adapter's manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.answers import is_correct
from ..core.config import FromSettings, setting_field
from ..core.versions import version_order
from .dataset import Example

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateThresholds(FromSettings):
    """What an adapter must reach (the settings' ``gate_*`` fields)."""

    min_new_recall: float = setting_field("gate_min_new_recall")  # newly taught items answered right alone
    min_retention: float = setting_field("gate_min_retention")  # items of earlier rounds still answered right
    min_round_retention: float = setting_field("gate_min_round_retention")  # the same, each round on its own
    max_anchor_drop: float = setting_field("gate_max_anchor_drop")  # largest fall in check-anchor accuracy
    min_paraphrase_recall: float = setting_field("gate_min_paraphrase_recall")  # taught items' paraphrases


@dataclass(frozen=True)
class GateReport:
    verdict: str  # "passed" or "refused"
    reasons: tuple[str, ...]
    new_recall: float | None
    retention: float | None
    anchor_accuracy: float | None
    base_anchor_accuracy: float | None
    paraphrase_recall: float | None
    retained_paraphrase_recall: float | None = None  # paraphrases of earlier rounds' items
    # by the round that taught them: {"v1": {"items", "recall", "paraphrases", "paraphrase_recall"}}
    retention_by_round: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    misses: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # a few wrong answers, for people
    prescreen: dict[str, Any] = field(default_factory=dict)  # what the trainer's teacher-forced pre-screen spared
    answers_kept: int = 0  # questions an unchanged adapter beside answered from an earlier gate (not asked again)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(
    ask: Callable[[str], str], examples: Sequence[Example], *, concurrency: int = 1
) -> tuple[float | None, list[dict[str, str]]]:
    """Share of ``examples`` answered right by ``ask``, and the misses. ``concurrency`` questions are in flight at
    once (vLLM batches them: the gate takes a fraction of the time of asking one by one)."""
    if not examples:
        return None, []
    answers = ask_each(ask, [e.question for e in examples], concurrency=concurrency)
    misses = [
        {"question": example.question, "expected": example.answer, "said": said}
        for example, said in zip(examples, answers, strict=True)
        if not is_correct(said, example.accepted_answers())
    ]
    return round(1.0 - len(misses) / len(examples), 4), misses


def ask_each(ask: Callable[[str], str], questions: Sequence[str], *, concurrency: int = 1) -> list[str]:
    """``ask``'s answer to each question, ``concurrency`` in flight at once."""
    if concurrency <= 1:
        return [ask(question) for question in questions]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(concurrency, thread_name_prefix="mentee-gate") as pool:
        return list(pool.map(ask, questions))


def run_gate(
    ask: Callable[[str], str],
    *,
    new: Sequence[Example],
    retained: Sequence[Example],
    check_anchors: Sequence[Example],
    paraphrases: Sequence[Example] = (),
    retained_paraphrases: Sequence[Example] = (),
    base_ask: Callable[[str], str] | None = None,
    base_accuracy: float | None = None,
    thresholds: GateThresholds | None = None,
    concurrency: int = 1,
) -> GateReport:
    """Measure the candidate (``ask``) and decide. ``retained``: items taught by earlier rounds (``learned_by``
    set), ``retained_paraphrases`` their held-out paraphrases. ``base_ask`` measures the base model on the check
    anchors, or ``base_accuracy`` gives what it measured before; with neither the base model is taken to get them
    all right (that is how anchors are chosen)."""
    limits = thresholds or GateThresholds()
    # All the checks' questions in one stream, so ``concurrency`` stay in flight from the first to the last.
    groups = (new, retained, check_anchors, paraphrases, retained_paraphrases)
    questions = list(dict.fromkeys(e.question for group in groups for e in group))
    said = dict(zip(questions, ask_each(ask, questions, concurrency=concurrency), strict=True)).__getitem__
    new_recall, new_misses = score(said, new)
    retention, retained_misses = score(said, retained)
    anchor_accuracy, anchor_misses = score(said, check_anchors)
    paraphrase_recall, paraphrase_misses = score(said, paraphrases)
    retained_paraphrase_recall, retained_paraphrase_misses = score(said, retained_paraphrases)
    by_round = _by_round(said, retained, retained_paraphrases)
    if not check_anchors:
        base_accuracy = None
    elif base_accuracy is None:
        base_accuracy = score(base_ask, check_anchors, concurrency=concurrency)[0] if base_ask is not None else 1.0
    reasons = []
    if new_recall is None:
        reasons.append("nothing new was taught")
    elif new_recall < limits.min_new_recall:
        reasons.append(f"did not learn: new-item recall {new_recall:.2f} < {limits.min_new_recall:.2f}")
    if retention is not None and retention < limits.min_retention:
        forgotten = _rounds_below(by_round, limits.min_retention)
        reasons.append(
            f"forgot taught items: retention {retention:.2f} < {limits.min_retention:.2f}"
            + (f"; forgot round {forgotten}" if forgotten else "")
        )
    elif forgotten := _rounds_below(by_round, limits.min_round_retention):
        reasons.append(f"forgot round {forgotten}: below {limits.min_round_retention:.2f} each")
    if anchor_accuracy is not None and base_accuracy is not None:
        drop = base_accuracy - anchor_accuracy
        if drop > limits.max_anchor_drop:
            reasons.append(
                f"forgot what the base model knew: anchor accuracy {anchor_accuracy:.2f} vs base "
                f"{base_accuracy:.2f} (drop {drop:.2f} > {limits.max_anchor_drop:.2f})"
            )
    if paraphrase_recall is not None and paraphrase_recall < limits.min_paraphrase_recall:
        reasons.append(f"paraphrase recall {paraphrase_recall:.2f} < {limits.min_paraphrase_recall:.2f}")
    if retained_paraphrase_recall is not None and retained_paraphrase_recall < limits.min_paraphrase_recall:
        reasons.append(
            f"paraphrase recall of earlier rounds {retained_paraphrase_recall:.2f} < {limits.min_paraphrase_recall:.2f}"
        )
    report = GateReport(
        verdict="refused" if reasons else "passed",
        reasons=tuple(reasons),
        new_recall=new_recall,
        retention=retention,
        anchor_accuracy=anchor_accuracy,
        base_anchor_accuracy=base_accuracy,
        paraphrase_recall=paraphrase_recall,
        retained_paraphrase_recall=retained_paraphrase_recall,
        retention_by_round=by_round,
        counts={
            "new": len(new),
            "retained": len(retained),
            "check_anchors": len(check_anchors),
            "paraphrases": len(paraphrases),
            "retained_paraphrases": len(retained_paraphrases),
        },
        misses={
            "new": new_misses[:10],
            "retained": retained_misses[:10],
            "anchors": anchor_misses[:10],
            "paraphrases": paraphrase_misses[:10],
            "retained_paraphrases": retained_paraphrase_misses[:10],
        },
    )
    logger.info("gate: %s %s", report.verdict, "; ".join(reasons))
    return report


def _by_round(
    said: Callable[[str], str], retained: Sequence[Example], paraphrases: Sequence[Example]
) -> dict[str, dict[str, Any]]:
    """Retention (and paraphrase recall) of each earlier round on its own, in the order the rounds came."""
    rounds = sorted({str(e.learned_by) for e in (*retained, *paraphrases)}, key=version_order)
    figures = {}
    for version in rounds:
        items = [e for e in retained if str(e.learned_by) == version]
        others = [e for e in paraphrases if str(e.learned_by) == version]
        figures[version] = {
            "items": len(items),
            "recall": score(said, items)[0],
            "paraphrases": len(others),
            "paraphrase_recall": score(said, others)[0],
        }
    return figures


def _rounds_below(by_round: dict[str, dict[str, Any]], limit: float) -> str:
    """The rounds whose retention is below ``limit``, as a reason names them: "v1 (0.40 of 30), v2 (0.55 of 30)"."""
    return ", ".join(
        f"{version} ({figures['recall']:.2f} of {figures['items']})"
        for version, figures in by_round.items()
        if figures["recall"] is not None and figures["recall"] < limit
    )
