"""Verified recall against a plain cosine cache on the pairs of data/near-duplicate-pairs-clean.jsonl, per split:
``tune`` (what the learned verifier was trained on), ``held`` (held back, same sources) and ``other``
(WebQuestions, never tuned on).

The floors below are the levels reached (bench/memory.py reports the same figures through the full store); a
change to the rules, the model or the defaults that loses ground fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.verify import RuleVerifier, make_verifier
from mentee.server.core.config import load_settings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

# split -> verifier -> (hit rate at least, false-hit rate at most, false hits / the plain cache's at most)
FLOORS = {
    "held": {"learned": (0.827, 0.078, 0.30), "rules": (0.629, 0.077, 0.61)},
    "other": {"learned": (0.868, 0.099, 1.51), "rules": (0.73, 0.043, 1.13)},
    "tune": {"learned": (0.80, 0.037, 0.30), "rules": (0.69, 0.015, 0.19)},
}


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return [json.loads(line) for line in (DATA / "near-duplicate-pairs-clean.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def distance(pairs: list[dict], embedder: Embedder) -> np.ndarray:
    first = np.array(embedder.embed([p["q1"] for p in pairs]))
    second = np.array(embedder.embed([p["q2"] for p in pairs]))
    return 1.0 - np.sum(first * second, axis=1)


@pytest.mark.parametrize("split", ["held", "other", "tune"])
@pytest.mark.parametrize("kind", ["learned", "rules"])
def test_verified_recall_against_a_plain_cosine_cache(
    pairs: list[dict], distance: np.ndarray, split: str, kind: str
) -> None:
    settings = load_settings()
    verifier = make_verifier(kind)
    in_split = np.array([p["split"] == split for p in pairs])
    same = np.array([p["same_question"] for p in pairs])[in_split]
    near = distance[in_split]
    chosen = [p for p in pairs if p["split"] == split]
    served = (near <= settings.memory_max_distance) & np.array(
        [verifier.check(p["q2"], p["q1"], float(d)).same for p, d in zip(chosen, near, strict=True)]
    )
    hit_rate, false_rate = served[same].mean(), served[~same].mean()
    threshold = np.quantile(near[same], hit_rate)  # the plain cache, tuned to the same hit rate
    baseline_false = (near[~same] <= threshold).mean()
    least_hits, most_false, most_ratio = FLOORS[split][kind]
    assert hit_rate >= least_hits
    assert false_rate <= most_false
    assert false_rate / baseline_false <= most_ratio


def test_the_default_verifier_is_the_learned_one() -> None:
    assert load_settings().memory_verifier == "learned"
    assert not isinstance(make_verifier(load_settings().memory_verifier), RuleVerifier)


def test_the_clean_pairs_are_what_their_recipe_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("pairs_labels", REPO / "bench" / "pairs_labels.py")
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    monkeypatch.setattr(recipe, "TARGET", tmp_path / "clean.jsonl")
    recipe.main()
    assert (tmp_path / "clean.jsonl").read_text() == (DATA / "near-duplicate-pairs-clean.jsonl").read_text()


def test_no_question_is_on_both_sides_of_the_split(pairs: list[dict]) -> None:
    def questions(split: str) -> set[str]:
        return {q.lower().strip() for p in pairs if p["split"] == split for q in (p["q1"], p["q2"])}

    assert not questions("tune") & questions("held")
    assert {p["set"] for p in pairs if p["split"] == "other"} == {"webquestions-test"}
    assert {p["set"] for p in pairs if p["split"] != "other"} == {"nq-open-dev", "triviaqa-dev"}


def test_the_other_source_pairs_come_from_the_shipped_webquestions(pairs: list[dict]) -> None:
    rows = [json.loads(line) for line in (DATA / "webquestions-test.jsonl").read_text().splitlines()]
    answers = {r["question"]: r["answers"] for r in rows}
    other = [p for p in pairs if p["split"] == "other"]
    assert len(other) == 290
    assert all(answers.get(p["q1"]) == p["a1"] and answers.get(p["q2"]) == p["a2"] for p in other)
