"""Each verification rule, with made-up cases and real pairs from data/near-duplicate-pairs.jsonl; the learned
verifier's vetoes, rewordings and model file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentee.memory.verify import FEATURES, LearnedVerifier, RuleVerifier, make_verifier, packaged_verifier, verify
from mentee.server.core.errors import ConfigError

SAME = [
    ("What is the capital of Switzerland?", "what is the capital of switzerland"),
    ("where is human sperm stored in the body", "where is sperm stored in the human body"),  # data, same_answer
    ("who sings love do n't live here anymore", "who sang love do n't live here anymore"),  # irregular verb
    ("when was the declaration of independance signed", "when was the declaration of independence signed"),
    ("What year did the Berlin Wall fall?", "When did the Berlin Wall fall?"),  # "what year" asks "when"
    ("Which metal is extracted from bauxite?", "What metal is extracted from bauxite?"),  # which = what
    ("who sings the song stuck in the middle with you", "who sings stuck in the middle with you"),  # filler
    ("the voice of jessie in toy story 2", "who does the voice of jessie in toy story 2"),  # no question word
    ("what is the fifth letter of the greek alphabet", "what is the 5th letter of the greek alphabet"),
    ("what happens in season 2 episode 3", "what happens in the 3rd episode of the 2nd season"),  # reordered
    ("who won the game 1-0", "who won the game 1 - 0"),
]

DIFFERENT = [
    ("What is the flag of Switzerland?", "What is the flag of Denmark?", "words replaced"),
    ("Which province is number 7?", "Which province is number 6?", "numbers differ"),
    ("Who won the World Cup in 2014?", "Who won the World Cup in 2010?", "numbers differ"),
    ("Who was the first president?", "Who was the second president?", "numbers differ"),
    ("Who was the first president?", "Who was the last president?", "numbers differ"),
    ("Who won Super Bowl XLVII?", "Who won Super Bowl XLVI?", "numbers differ"),
    ("How many legs does a spider have?", "How many legs does a spider not have?", "negated"),
    ("Which countries don't use the euro?", "Which countries use the euro?", "negated"),
    ("Who wrote Hamlet?", "When was Hamlet written?", "question words differ"),
    ("How many people live in Paris?", "How old is Paris?", "question words differ"),
    ("where is human sperm stored in the body", "where is sperm made in the human body", "words replaced"),  # data
    ("who does the voice of brian on family guy", "who does the voice of stewie on family guy", "words replaced"),
    ("Which element has the chemical symbol S?", "Which element has the chemical symbol Au?", "words replaced"),
    ("Which state has the lowest population?", "Which state has the lowest population in New England?", "names"),
    ("when does el señor de los cielos start", "when does the new season of el señor de los cielos start", "words"),
    ("Where is Washington?", "Where is Wellington?", "words replaced"),  # 3 edits apart: not a typo
    ("what happens in season 2 episode 3", "what happens in season 3 episode 2", "count other things"),  # swapped
    ("who dies in chapter 12 of book 7", "who dies in the 7th chapter of the 12th book", "count other things"),
]


@pytest.mark.parametrize(("query", "remembered"), SAME)
def test_same_questions_pass(query: str, remembered: str) -> None:
    verdict = verify(query, remembered)
    assert verdict.same, verdict.reasons


@pytest.mark.parametrize(("query", "remembered", "reason"), DIFFERENT)
def test_near_misses_are_caught(query: str, remembered: str, reason: str) -> None:
    verdict = verify(query, remembered)
    assert not verdict.same
    assert any(reason in r for r in verdict.reasons), verdict.reasons
    assert not verify(remembered, query).same  # symmetric


def test_odd_digits_are_words_not_crashes() -> None:
    # Found by the API fuzz (tests/test_api_fuzz.py): '²' passes str.isdigit() but int() refuses it.
    assert not verify("What is x² plus 2?", "What is x³ plus 2?").same
    assert verify("What is x² plus 2?", "what is x² plus 2").same


# The learned verifier (the memory's default): the vetoes refuse whatever the model says; reworded questions the
# rules refused for one replaced word are weighed instead (at the distances the packaged MiniLM measures).
REWORDED = [
    ("who is the author of the hobbit", "who wrote the hobbit", 0.052),  # "words replaced: author vs write"
    ("which south american country has the smallest land area", "what is the smallest country in south america", 0.131),
    ("who is the longest serving coach in premier league",
     "who is the longest serving manager in the premier league", 0.133),
]  # fmt: skip
VETOED = [
    ("who wins season 2 of americas next top model", "who wins americas next top model season 4", "numbers differ"),
    ("what happens in season 2 episode 3", "what happens in season 3 episode 2", "count other things"),
    ("Which countries don't use the euro?", "Which countries use the euro?", "negated"),
    ("who wrote ca n 't get you outta my head lyrics", "who sings ca n 't get you outta my head", "credits differ"),
    ("who wrote just be a man about it by toni braxton", "who produced toni braxton just be a man about it", "credits"),
]


@pytest.mark.parametrize(("query", "remembered", "distance"), REWORDED)
def test_the_learned_verifier_serves_rewordings_the_rules_refused(query: str, remembered: str, distance: float) -> None:
    assert not verify(query, remembered).same
    verdict = packaged_verifier().check(query, remembered, distance)
    assert verdict.same, verdict
    assert verdict.score is not None and verdict.score >= packaged_verifier().threshold


@pytest.mark.parametrize(("query", "remembered", "reason"), VETOED)
def test_the_vetoes_refuse_whatever_the_model_says(query: str, remembered: str, reason: str) -> None:
    verdict = packaged_verifier().check(query, remembered, 0.0)  # as near as can be
    assert not verdict.same and any(reason in r for r in verdict.reasons), verdict
    assert verdict.score is None  # the model was never asked


def test_a_refusal_says_the_score_and_what_differs() -> None:
    verdict = packaged_verifier().check("what is the flag of switzerland", "what is the capital of denmark", 0.19)
    assert not verdict.same
    assert verdict.reasons[0].startswith("learned verifier: ") and "words replaced" in " ".join(verdict.reasons)


def test_the_packaged_model_says_what_it_was_trained_on() -> None:
    verifier = packaged_verifier()
    assert verifier.trained_on["split"] == "tune" and verifier.trained_on["file"] == "near-duplicate-pairs-clean.jsonl"
    assert 0 < verifier.threshold < 1
    assert isinstance(make_verifier("rules"), RuleVerifier) and make_verifier("learned") is verifier


def test_the_learned_verifier_stays_cheap_on_hostile_text() -> None:
    import time

    started = time.perf_counter()
    packaged_verifier().check("who " + "wrote " * 1000 + "a" * 2000, "who " + "sang " * 1000 + "b" * 2000, 0.1)
    assert time.perf_counter() - started < 1.0  # bounded work (a generous limit, not a benchmark)


LINEAR = {"features": list(FEATURES), "threshold": 0.5, "mean": [0], "scale": [1], "weights": [1], "intercept": 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"threshold": 0.5}', "is not a verifier model"),
        (json.dumps({**LINEAR, "features": ["distance"]}), "other features"),
        (json.dumps(LINEAR), "need"),
        (
            json.dumps({**LINEAR, "mean": [0] * len(FEATURES), "scale": [1] * len(FEATURES), "weights": "x"}),
            "could not convert",
        ),
    ],
)
def test_a_bad_verifier_file_is_a_clear_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "verifier.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        LearnedVerifier(path)
    with pytest.raises(ConfigError, match="memory_verifier must be"):
        make_verifier("magic")


def test_names_in_one_only_are_a_veto() -> None:
    verdict = packaged_verifier().check("What is the flag of Switzerland?", "What is the flag of Denmark?", 0.05)
    assert not verdict.same and verdict.reasons == ("names only in one: ['denmark', 'switzerland']",)
