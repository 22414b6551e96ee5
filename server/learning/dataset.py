"""What a learning round trains on, and what its gate checks.

- **New items**: remembered answers no adapter has learned yet.
- **Replay**: items learned by earlier adapters, so a new adapter keeps them.
- **Retention checks**: a sample of *everything* taught before, the same number from each round that taught them
  (``learned_by``), which the gate asks to prove nothing taught was lost; not chosen by the replay, so items the
  round did not train on are asked too.
- **Anchors**: questions the *base* student already answers correctly (built once from its own answers on a QA
  file). They are split for good into *replay* anchors, trained on to hold the student's general knowledge in
  place, and *check* anchors, never trained on, on which the gate measures forgetting.

Examples are put in the student's own prompt format (the few-shot Q/A prompt of a base model, or its chat
template), so it learns the answers the way it is asked; the loss falls on the answer tokens only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..core.answers import is_correct
from ..core.errors import InvalidRequestError
from ..core.files import read_jsonl, write_json
from ..core.versions import version_order
from ..student.prompting import ChatMessage, PromptFormat

if TYPE_CHECKING:
    from ...memory.store import Memory

logger = logging.getLogger(__name__)

ANCHORS_FILE = "anchors.json"
Kind = Literal["new", "replay", "anchor", "rationale", "paraphrase", "retention"]


@dataclass(frozen=True)
class Example:
    """One question and the answer to train on."""

    id: str
    question: str
    answer: str
    kind: Kind
    accepted: tuple[str, ...] = ()  # answers that count as right when checking it (the answer itself if empty)
    learned_by: str | None = None  # the adapter version that taught it, for an item taught before

    def accepted_answers(self) -> tuple[str, ...]:
        return self.accepted or (self.answer,)


@dataclass(frozen=True)
class Anchor:
    """A question the base student answers correctly."""

    id: str
    question: str
    answers: tuple[str, ...]  # accepted answers from the QA file
    base_answer: str  # what the base student said (trained on for replay: its own words)
    split: Literal["replay", "check"]


@dataclass(frozen=True)
class AnchorSet:
    anchors: tuple[Anchor, ...]
    source: str
    asked: int
    created_at: float = field(default_factory=time.time)

    def split(self, name: str) -> list[Anchor]:
        return [a for a in self.anchors if a.split == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "asked": self.asked,
            "created_at": self.created_at,
            "anchors": [asdict(a) for a in self.anchors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnchorSet:
        anchors = tuple(
            Anchor(a["id"], a["question"], tuple(a["answers"]), a["base_answer"], a["split"]) for a in data["anchors"]
        )
        return cls(anchors, data["source"], int(data["asked"]), float(data.get("created_at", 0.0)))


def build_anchors(
    ask: Callable[[str], str],
    rows: Iterable[dict[str, Any]],
    *,
    source: str,
    limit: int,
    check_share: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> AnchorSet:
    """Ask the base student up to ``limit`` questions; keep those it gets right, each put for good in the replay
    or the check split (by a hash of the question, so the split never depends on order)."""
    if not 0.0 < check_share < 1.0:
        msg = f"check_share must be between 0 and 1, got {check_share}"
        raise InvalidRequestError(msg)
    anchors = []
    asked = 0
    for row in rows:
        if asked >= limit:
            break
        asked += 1
        said = ask(row["question"])
        if progress is not None:
            progress(asked)
        if said.strip() and is_correct(said, row["answers"]):
            anchor_id = _digest(row["question"])
            split: Literal["replay", "check"] = "check" if _share(anchor_id) < check_share else "replay"
            anchors.append(Anchor(anchor_id, row["question"], tuple(row["answers"]), said.strip(), split))
    return AnchorSet(tuple(anchors), source, asked)


def save_anchors(home: Path, anchors: AnchorSet) -> Path:
    return write_json(home / ANCHORS_FILE, anchors.to_dict(), indent=1)


def load_anchors(home: Path) -> AnchorSet | None:
    path = home / ANCHORS_FILE
    if not path.is_file():
        return None
    return AnchorSet.from_dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class RoundData:
    """A round's training examples and the figures the gate checks them by."""

    new: tuple[Example, ...]
    replay: tuple[Example, ...]
    anchors: tuple[Example, ...]  # replay anchors, trained on
    check_anchors: tuple[Example, ...]  # held out: never trained on
    extra: tuple[Example, ...] = ()  # what the distillation set-up adds: rationales, paraphrases (trained on)
    paraphrase_checks: tuple[Example, ...] = ()  # held-out paraphrases of new items, from data (never trained on)
    retention: tuple[Example, ...] = ()  # earlier taught items the gate asks, stratified by the round that taught them
    retention_paraphrases: tuple[Example, ...] = ()  # held-out paraphrases of the retention checks
    distillation: dict[str, Any] = field(default_factory=dict)  # the set-up and what it did

    @property
    def train(self) -> list[Example]:
        return [*self.new, *self.extra, *self.replay, *self.anchors]

    def summary(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "extra": len(self.extra),
            "replay": len(self.replay),
            "anchors": len(self.anchors),
            "check_anchors": len(self.check_anchors),
            "paraphrase_checks": len(self.paraphrase_checks),
            "retention_checks": _count_by_round(self.retention),
            "retention_paraphrases": len(self.retention_paraphrases),
            "distillation": self.distillation,
            "new_ids": [e.id for e in self.new],
            "replay_ids": [e.id for e in self.replay],
            "anchor_ids": [e.id for e in self.anchors],
        }


def build_round(
    memory: Memory,
    anchors: AnchorSet | None,
    *,
    replay_per_new: float = 1.0,
    anchors_per_new: float = 1.0,
    max_new: int = 500,
    replay_all: bool = False,
    retention_sample: int = 200,
    seed: int = 0,
) -> RoundData:
    """The next round's data from the memory: items not yet learned (oldest first, at most ``max_new``), a sample
    of learned items to replay (every one with ``replay_all``), and replay anchors, in the configured ratios to the
    new items; and up to ``retention_sample`` learned items for the gate to ask (:func:`retention_checks`)."""
    if replay_per_new < 0 or anchors_per_new < 0:
        msg = "replay_per_new and anchors_per_new must be >= 0"
        raise InvalidRequestError(msg)
    records = memory.list(limit=10**9)
    pending = sorted((r for r in records if not r.learned_by), key=lambda r: r.created_at)[:max_new]
    learned = [r for r in records if r.learned_by]
    rng = random.Random(seed)
    new = tuple(Example(r.id, r.question, r.answer, "new") for r in pending)
    replay_count = len(learned) if replay_all else min(len(learned), round(len(new) * replay_per_new))
    replay = tuple(
        Example(r.id, r.question, r.answer, "replay", learned_by=r.learned_by)
        for r in rng.sample(learned, replay_count)
    )
    replay_anchors = anchors.split("replay") if anchors is not None else []
    anchor_count = min(len(replay_anchors), round(len(new) * anchors_per_new))
    trained_anchors = tuple(
        Example(a.id, a.question, a.base_answer, "anchor", a.answers) for a in rng.sample(replay_anchors, anchor_count)
    )
    check = tuple(
        Example(a.id, a.question, a.base_answer, "anchor", a.answers)
        for a in (anchors.split("check") if anchors is not None else [])
    )
    # Its own seed stream: the checks do not move when the replay's ratio does, and follow no choice of the replay.
    retention = retention_checks(learned, retention_sample, seed=seed)
    return RoundData(new, replay, trained_anchors, check, retention=retention)


def retention_checks(learned: Sequence[Any], size: int, *, seed: int = 0) -> tuple[Example, ...]:
    """Up to ``size`` of the ``learned`` memory records, as even a share from each round that taught them
    (``learned_by``) as their numbers allow: a round's forgetting shows in its own figure however small it was
    against the others. Seeded; the same memory gives the same checks."""
    if size < 0:
        msg = f"the retention sample must be >= 0, got {size}"
        raise InvalidRequestError(msg)
    by_round: dict[str, list[Any]] = {}
    for record in sorted(learned, key=lambda r: (r.created_at, r.id)):
        by_round.setdefault(str(record.learned_by), []).append(record)
    quota = dict.fromkeys(by_round, 0)
    left = min(size, sum(len(records) for records in by_round.values()))
    while left:  # one more from each round that has one to give, until the sample is full
        for version in sorted(quota, key=version_order):
            if left and quota[version] < len(by_round[version]):
                quota[version] += 1
                left -= 1
    rng = random.Random(f"retention:{seed}")
    return tuple(
        Example(r.id, r.question, r.answer, "retention", learned_by=r.learned_by)
        for version in sorted(by_round, key=version_order)
        for r in rng.sample(by_round[version], quota[version])
    )


def _count_by_round(examples: Sequence[Example]) -> dict[str, int]:
    return dict(Counter(str(example.learned_by) for example in examples))


def load_question_pairs(path: Path) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """Pairs of questions that ask the same thing (JSON Lines: ``q1``, ``q2``, optional ``a1``/``a2`` answer lists
    and ``same_answer``; rows with ``same_answer: false`` are skipped), as ``(q1, q2, a1, a2)``."""
    pairs = []
    for number, row in read_jsonl(path, "question-pairs file", InvalidRequestError):
        if not isinstance(row, dict) or not isinstance(row.get("q1"), str) or not isinstance(row.get("q2"), str):
            msg = f"question-pairs file {str(path)!r}, line {number}: needs 'q1' and 'q2' questions"
            raise InvalidRequestError(msg)
        if row.get("same_answer", True):
            answers = tuple(str(a) for a in row.get("a1") or ()), tuple(str(a) for a in row.get("a2") or ())
            pairs.append((row["q1"], row["q2"], *answers))
    return pairs


def paraphrase_checks(
    new: Sequence[Example], pairs: Sequence[tuple[str, str, tuple[str, ...], tuple[str, ...]]]
) -> tuple[Example, ...]:
    """For each new item whose question is one side of a pair, the other side: a paraphrase the gate asks and
    no round trains on. It counts as right with the taught answer or the paraphrase's own accepted answers."""
    others: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for q1, q2, a1, a2 in pairs:
        others.setdefault(normalize_question(q1), []).append((q2, a2))
        others.setdefault(normalize_question(q2), []).append((q1, a1))
    checks = []
    for example in new:
        for number, (question, answers) in enumerate(others.get(normalize_question(example.question), [])):
            accepted = tuple(dict.fromkeys((*example.accepted_answers(), *answers)))
            checks.append(
                Example(
                    f"{example.id}:heldout{number}",
                    question,
                    example.answer,
                    "paraphrase",
                    accepted,
                    learned_by=example.learned_by,
                )
            )
    return tuple(checks)


def normalize_question(text: str) -> str:
    """Case, spacing and the final question mark do not make two questions different."""
    return " ".join(text.lower().split()).rstrip("?").strip()


def training_pair(fmt: PromptFormat, question: str, answer: str, tokenizer: Any = None) -> tuple[str, str]:
    """(prompt, completion) for one example in the student's prompt format; the loss falls on the completion."""
    request = fmt.build([ChatMessage("user", question)])
    if request.endpoint == "completions":
        return request.prompt, " " + " ".join(answer.split()) + "\n"
    if tokenizer is None:
        msg = "a chat-template student needs its tokenizer to format training examples"
        raise InvalidRequestError(msg)
    prompt = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
    return prompt, answer.strip() + (tokenizer.eos_token or "")


def examples_to_json(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [asdict(e) for e in examples]


def _digest(text: str) -> str:
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:16]


def _share(digest: str) -> float:
    return int(digest[:8], 16) / 0xFFFFFFFF
