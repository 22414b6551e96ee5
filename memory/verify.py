"""Verification of memory hits: a near neighbour is served only if it asks the *same* question.

Embedding distance finds candidates; it cannot tell "province 7" from "province 6" (distance 0.08), "where is
sperm stored" from "where is sperm made", or a question from its negation. Two verifiers share one base:

- :class:`RuleVerifier` (:func:`verify`): each rule compares the query with the remembered question on one thing
  that changes the answer; a candidate must pass them all.
- :class:`LearnedVerifier` (the default): the rules that catch real near-misses every time (other numbers,
  numbers counting other things, a negation, another question word, another credit, a capitalised name in one
  only) still refuse outright; the rest (replaced or extra words, typos) and the distance become :func:`features`
  of a logistic regression trained on the tuning split of ``data/near-duplicate-pairs-clean.jsonl`` by
  ``bench/train_verifier.py`` and shipped as JSON (``memory/data/verifier.json``), so that a reworded question
  ("who is the author of" / "who wrote") is weighed, not refused for one replaced word. bench/memory.py scores
  both on the held-back split and on WebQuestions.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..server.core.errors import ConfigError

logger = logging.getLogger(__name__)

PACKAGED_VERIFIER = Path(__file__).resolve().parent / "data" / "verifier.json"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "once": 1, "twice": 2, "single": 1, "double": 2, "triple": 3,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "twentieth": 20, "hundredth": 100, "last": -1, "latest": -1, "final": -1,
}  # fmt: skip
_ROMAN = re.compile(r"^(?=[ivxlc]{2,}$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_ORDINAL_DIGITS = re.compile(r"^(\d+)(st|nd|rd|th|s)$")
_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "except", "cannot"}
# Question words that ask the same thing map to one: "which"/"what", "whom"/"whose"/"who".
_QUESTION_WORDS = {
    "who": "who", "whom": "who", "whose": "who", "what": "what", "which": "what", "when": "when",
    "where": "where", "why": "why", "how": "how",
}  # fmt: skip
# "what year" asks "when"; "what city" asks "where".
_WHEN_NOUNS = {"year", "date", "time", "day", "month", "decade", "century"}
_WHERE_NOUNS = {"city", "country", "place", "town", "state", "location", "continent", "county"}
# Words that only say what kind of thing is asked about; one of them more or less does not change a question.
_FILLERS = {
    "song",
    "movie",
    "film",
    "show",
    "tv",
    "series",
    "book",
    "novel",
    "band",
    "group",
    "singer",
    "actor",
    "actress",
    "character",
    "episode",
    "game",
    "album",
    "play",
    "all",
    "else",
    "exactly",
    "really",
}
_IRREGULAR = {
    "sang": "sing", "sung": "sing", "wrote": "write", "written": "write", "won": "win", "began": "begin",
    "begun": "begin", "took": "take", "taken": "take", "gave": "give", "given": "give", "born": "bear",
    "found": "find", "built": "build", "made": "make", "spoke": "speak", "spoken": "speak", "fought": "fight",
    "led": "lead", "held": "hold", "became": "become", "ran": "run", "left": "leave", "broke": "break",
    "broken": "break", "drove": "drive", "driven": "drive", "ate": "eat", "eaten": "eat", "fell": "fall",
    "fallen": "fall", "flew": "fly", "flown": "fly", "grew": "grow", "grown": "grow", "knew": "know",
    "known": "know", "saw": "see", "seen": "see", "threw": "throw", "thrown": "throw", "wore": "wear",
    "worn": "wear", "chose": "choose", "chosen": "choose", "drew": "draw", "drawn": "draw", "rode": "ride",
    "rose": "rise", "risen": "rise", "shot": "shoot", "sank": "sink", "sunk": "sink", "stole": "steal",
    "stolen": "steal", "swam": "swim", "taught": "teach", "thought": "think", "bought": "buy",
    "brought": "bring", "caught": "catch", "sold": "sell", "told": "tell", "paid": "pay", "said": "say",
    "laid": "lay", "lost": "lose", "met": "meet", "sat": "sit", "stood": "stand", "felt": "feel",
    "kept": "keep", "slept": "sleep", "sent": "send", "spent": "spend", "meant": "mean", "heard": "hear",
    "hung": "hang", "hanged": "hang", "sings": "sing", "singing": "sing", "singer": "sing", "dead": "die",
    "death": "die", "died": "die", "dies": "die", "wife": "marry", "husband": "marry", "married": "marry",
}  # fmt: skip
# What someone did to a work ("who wrote" / "who sang" / "who produced" it): another credit is another question
# ("wrote" / "sang" share a singer-songwriter's answer only by chance). Stems (see _stem) -> the credit.
_CREDITS = {
    "write": "write", "author": "write", "writer": "write", "sing": "sing", "produc": "produce",
    "producer": "produce", "direct": "direct", "director": "direct", "compos": "compose", "composer": "compose",
    "record": "record", "perform": "perform", "performer": "perform", "play": "play", "voice": "voice",
    "voic": "voice", "star": "star", "starr": "star", "invent": "invent", "inventor": "invent",
    "discover": "discover", "paint": "paint", "painter": "paint", "design": "design", "designer": "design",
    "build": "build", "builder": "build", "found": "found", "founder": "found",
}  # fmt: skip
_QUANTITY_WORDS = {"many", "much", "long", "old", "far", "big", "tall", "often", "high", "deep", "large"}
# Words that carry no content of their own for telling two questions apart.
_STOPWORDS = {
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "from", "with", "as", "into", "onto", "about",
    "and", "or", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "has",
    "have", "had", "having", "will", "would", "shall", "should", "can", "could", "may", "might", "must",
    "it", "its", "this", "that", "these", "those", "there", "their", "they", "them", "he", "she", "his", "her",
    "him", "i", "you", "we", "us", "our", "your", "my", "me", "s", "'s", "name", "called", "known", "get", "got",
    "go", "goes", "went", "come", "came", "up", "out", "so", "if", "then", "than", "also", "just", "some", "any",
    "one", "ones", "type", "kind", "please", "tell", "today", "currently", "now", "actually", "usually",
}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """Whether a remembered question asks the same as the query, and if not, which rules said no."""

    same: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    score: float | None = None  # the learned verifier's probability that both ask the same; None for the rules


@dataclass(frozen=True)
class _Parsed:
    words: tuple[str, ...]
    numbers: Counter[int]
    # Each number with the word it counts ("season 2", "2nd season"), so swapped numbers are told apart.
    counted: frozenset[tuple[str, int]]
    negated: bool
    question_words: frozenset[str]
    content: frozenset[str]
    names: frozenset[str]


def verify(query: str, remembered: str) -> Verdict:
    """Check that ``remembered`` asks what ``query`` asks: same numbers and years, same negation, same kind of
    question, and no content word (a name, a place, a verb) of one missing from or replaced in the other."""
    a, b = _parse(query), _parse(remembered)
    reasons = _asked_differently(a, b)
    only_a, only_b = _unmatched(a.content, b.content), _unmatched(b.content, a.content)
    if only_a and only_b:
        reasons.append(f"words replaced: {sorted(only_a)} vs {sorted(only_b)}")
    elif only_a or only_b:
        extra = (only_a or only_b) - _FILLERS
        named = extra & (a.names | b.names)
        if named:
            reasons.append(f"names only in one: {sorted(named)}")
        elif len(extra) > 1:
            reasons.append(f"words only in one: {sorted(extra)}")
    return Verdict(same=not reasons, reasons=tuple(reasons))


FEATURES = (
    "distance",
    "question_word_missing",
    "only_in_query",
    "only_in_remembered",
    "typo_pairs",
    "words_replaced",
    "extra_words",
    "content_overlap",
    "fewest_content_words",
    "char_similarity",
    "token_set_similarity",
)


def vetoes(query: str, remembered: str) -> tuple[str, ...]:
    """The rules that refuse whatever else agrees: other numbers or years, numbers counting other things
    ("season 2 episode 3" / "season 3 episode 2"), a negation on one side only, another kind of question ("who" /
    "when"; "what year" counts as "when"), another credit ("who wrote" / "who sang"), a capitalised name in one
    only ("Switzerland" / "Denmark": lower-case questions have none, so this leaves the model to decide). The
    last three were each kept because grouped cross-validation on the tuning split improved with them
    (bench/train_verifier.py)."""
    a, b = _parse(query), _parse(remembered)
    reasons = _asked_differently(a, b)
    credits_a, credits_b = _credits(a.content), _credits(b.content)
    if credits_a != credits_b:
        reasons.append(f"credits differ: {sorted(credits_a)} vs {sorted(credits_b)}")
    named = (_unmatched(a.content, b.content) | _unmatched(b.content, a.content)) & (a.names | b.names)
    if named:
        reasons.append(f"names only in one: {sorted(named)}")
    return tuple(reasons)


def _credits(content: frozenset[str]) -> frozenset[str]:
    return frozenset(_CREDITS[word] for word in content if word in _CREDITS)


def features(query: str, remembered: str, distance: float) -> list[float]:
    """What the learned verifier weighs, in the order of :data:`FEATURES`: the embedding distance, whether one
    has no question word, the content words only in one (less those that look like a typo of
    a word in the other), whether words were replaced rather than added, the share of content words in common,
    and two character-level similarities (rapidfuzz). Names only in one are a veto, not a feature."""
    from rapidfuzz import fuzz
    from rapidfuzz.distance import Indel

    a, b = _parse(query), _parse(remembered)
    only_a, only_b = _unmatched(a.content, b.content), _unmatched(b.content, a.content)
    typos = sum(
        1
        for word in only_a
        if len(only_b) <= _MOST_FUZZY
        and any(min(len(word), len(o)) >= 5 and Indel.normalized_similarity(word, o) >= 0.8 for o in only_b)
    )
    extra = (only_a | only_b) - _FILLERS
    union = len(a.content | b.content) or 1
    cut_query, cut_remembered = query[:_MOST_CHARS].lower(), remembered[:_MOST_CHARS].lower()
    return [
        float(distance),
        float(not a.question_words or not b.question_words),
        float(len(only_a) - typos),
        float(len(only_b) - typos),
        float(typos),
        float(bool(only_a and only_b)),
        float(len(extra)),
        1.0 - (len(only_a) + len(only_b)) / union,
        float(min(len(a.content), len(b.content))),
        fuzz.ratio(cut_query, cut_remembered) / 100,
        fuzz.token_set_ratio(cut_query, cut_remembered) / 100,
    ]


# Character similarities look at the first characters only: no question buys more than a normal one's CPU.
_MOST_CHARS = 500


class Verifier(ABC):
    """Says whether a remembered question asks what a query asks; ``distance`` is their embedding distance."""

    name: str

    @abstractmethod
    def check(self, query: str, remembered: str, distance: float) -> Verdict:
        """The verdict for serving ``remembered``'s answer to ``query``."""


class RuleVerifier(Verifier):
    """The hand-written rules of :func:`verify`; the distance is left to the memory's ``max_distance``."""

    name = "rules"

    def check(self, query: str, remembered: str, distance: float) -> Verdict:
        return verify(query, remembered)


class LearnedVerifier(Verifier):
    """:func:`vetoes` first, then a logistic regression over :func:`features` whose probability must reach the
    file's threshold. The file is JSON (never a pickle), as ``bench/train_verifier.py`` writes it: the features'
    names, mean and scale, the weights, the intercept and the threshold."""

    name = "learned"

    def __init__(self, path: str | Path = "") -> None:
        self.path = Path(path).expanduser() if path else PACKAGED_VERIFIER
        try:
            model = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            msg = f"memory_verifier_file: cannot read a verifier model from {str(self.path)!r}: {e}"
            raise ConfigError(msg) from e
        try:
            self._load(model)
        except (KeyError, TypeError, ValueError) as e:
            msg = f"memory_verifier_file: {str(self.path)!r} is not a verifier model ({type(e).__name__}: {e})"
            raise ConfigError(msg) from e
        self.trained_on = model.get("trained_on", {})

    def _load(self, model: dict[str, Any]) -> None:
        if list(model["features"]) != list(FEATURES):
            msg = f"trained on other features ({model['features']}); retrain it with bench/train_verifier.py"
            raise ValueError(msg)
        self.threshold = float(model["threshold"])
        self.mean = [float(v) for v in model["mean"]]
        self.scale = [float(v) or 1.0 for v in model["scale"]]
        self.weights = [float(v) for v in model["weights"]]
        self.intercept = float(model["intercept"])
        if not len(self.mean) == len(self.scale) == len(self.weights) == len(FEATURES):
            msg = f"mean, scale and weights need {len(FEATURES)} values each"
            raise ValueError(msg)

    def score(self, query: str, remembered: str, distance: float) -> float:
        """The probability that both ask the same (vetoes aside)."""
        values = features(query, remembered, distance)
        raw = self.intercept + sum(
            w * (v - m) / s for w, v, m, s in zip(self.weights, values, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, raw))))

    def check(self, query: str, remembered: str, distance: float) -> Verdict:
        refused = vetoes(query, remembered)
        if refused:
            return Verdict(same=False, reasons=refused)
        probability = self.score(query, remembered, distance)
        if probability >= self.threshold:
            return Verdict(same=True, score=probability)
        # The rules' reasons say what differs; the score says that it weighed enough to refuse.
        reasons = (
            f"learned verifier: {probability:.2f} below {self.threshold:.2f}",
            *verify(query, remembered).reasons,
        )
        return Verdict(same=False, reasons=reasons, score=probability)


@lru_cache(maxsize=1)
def packaged_verifier() -> LearnedVerifier:
    """The packaged learned verifier, read once (it never changes while mentee runs)."""
    return LearnedVerifier()


def make_verifier(kind: str, path: str | Path = "") -> Verifier:
    """The verifier the settings name (``memory_verifier``, ``memory_verifier_file``)."""
    if kind == "rules":
        return RuleVerifier()
    if kind == "learned":
        return LearnedVerifier(path) if path else packaged_verifier()
    msg = f"memory_verifier must be 'learned' or 'rules', got {kind!r}"
    raise ConfigError(msg)


def _asked_differently(a: _Parsed, b: _Parsed) -> list[str]:
    """What both verifiers refuse on: other numbers, numbers counting other things, a negation in one only,
    another kind of question."""
    reasons = []
    if a.numbers != b.numbers:
        reasons.append(f"numbers differ: {_show(a.numbers)} vs {_show(b.numbers)}")
    elif swapped := _swapped(a.counted, b.counted):
        reasons.append(f"numbers count other things: {swapped}")
    if a.negated != b.negated:
        reasons.append("one is negated, the other not")
    if a.question_words and b.question_words and a.question_words != b.question_words:
        reasons.append(f"question words differ: {sorted(a.question_words)} vs {sorted(b.question_words)}")
    return reasons


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Parsed:
    raw_tokens = _WORD.findall(text.replace(",", "").replace("\u2019", "'"))
    names = frozenset(
        _stem(t.lower())
        for i, t in enumerate(raw_tokens)
        if i > 0 and t[:1].isupper() and (len(t) == 1 or t.lower() not in _STOPWORDS)
    )
    words = tuple(t.lower() for t in raw_tokens)
    # A capital letter standing alone after the start is a symbol or initial ("symbol S"), not the word "s".
    symbols = {t.lower() for i, t in enumerate(raw_tokens) if i > 0 and len(t) == 1 and t.isupper()}
    numbers: Counter[int] = Counter()
    counted: set[tuple[str, int]] = set()
    content: set[str] = set()
    negated = False
    question_words: set[str] = set()
    for index, word in enumerate(words):
        bare = word.removesuffix("n't").removesuffix("'s")
        if word.endswith("n't") or bare in _NEGATIONS:
            negated = True
            continue
        if bare in _QUESTION_WORDS:
            asked = _QUESTION_WORDS[bare]
            following = words[index + 1] if index + 1 < len(words) else ""
            if asked == "how" and following in _QUANTITY_WORDS:
                asked = f"how {following}"
            elif asked == "what" and _stem(following) in _WHEN_NOUNS:
                asked = "when"
            elif asked == "what" and _stem(following) in _WHERE_NOUNS:
                asked = "where"
            question_words.add(asked)
            continue
        number = _number(bare)
        if number is not None:
            numbers[number] += 1
            counted_word = _counted_word(words, index, symbols)
            if counted_word is not None:
                counted.add((counted_word, number))
            continue
        if bare not in _STOPWORDS or bare in symbols:
            content.add(_stem(bare))
    return _Parsed(words, numbers, frozenset(counted), negated, frozenset(question_words), frozenset(content), names)


def _counted_word(words: tuple[str, ...], index: int, symbols: set[str]) -> str | None:
    """The word a number at ``index`` counts: the content word just before it ("season 2"), else just after it
    ("2nd season"); None when neither is one ("0-1")."""
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(words):
            word = words[neighbour]
            if _number(word) is None and word not in _QUESTION_WORDS and (word not in _STOPWORDS or word in symbols):
                return _stem(word)
    return None


def _swapped(a: frozenset[tuple[str, int]], b: frozenset[tuple[str, int]]) -> str:
    """Where the same numbers count different things ("season 2 episode 3" / "season 3 episode 2"): each word
    whose numbers differ, shown as "season 2 vs 3"; '' when none does."""
    by_word_a, by_word_b = _numbers_by_word(a), _numbers_by_word(b)

    def listed(numbers: Counter[int]) -> str:
        return "/".join(map(str, _show(numbers)))

    return ", ".join(
        f"{word} {listed(by_word_a[word])} vs {listed(by_word_b[word])}"
        for word in sorted(by_word_a.keys() & by_word_b.keys())
        if by_word_a[word] != by_word_b[word]
    )


def _numbers_by_word(counted: frozenset[tuple[str, int]]) -> dict[str, Counter[int]]:
    grouped: dict[str, Counter[int]] = {}
    for word, number in counted:
        grouped.setdefault(word, Counter())[number] += 1
    return grouped


def _number(word: str) -> int | None:
    if word.isdecimal():  # not isdigit(): superscripts such as '²' are digits that int() refuses
        return int(word)
    ordinal = _ORDINAL_DIGITS.match(word)
    if ordinal:
        return int(ordinal.group(1))
    if word in _NUMBER_WORDS and word != "one":
        return _NUMBER_WORDS[word]
    if _ROMAN.match(word):
        return _roman_value(word)
    return None


def _roman_value(word: str) -> int:
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
    total = 0
    for current, following in zip(word, [*word[1:], ""], strict=True):
        value = values[current]
        total += -value if following and values[following] > value else value
    return total


def _stem(word: str) -> str:
    """A light stemmer: enough to match 'stores'/'stored'/'storing', 'country'/'countries', 'sang'/'sing'."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def _unmatched(words: frozenset[str], others: frozenset[str]) -> frozenset[str]:
    """Words with no counterpart in ``others``: equal, one a 4+ letter prefix of the other, or a likely typo.

    The work is bounded whatever the texts (a hostile 2,000-character question once cost 10 s here): exact
    matches are set operations, and only when at most ``_MOST_FUZZY`` words are left is each compared with the
    others for a prefix or a typo (more unmatched words than that is another question, typos or not)."""
    left = words - others
    if len(left) > _MOST_FUZZY:
        return left
    return frozenset(w for w in left if not any(_same_word(w, o) for o in others))


_MOST_FUZZY = 16


def _same_word(word: str, other: str) -> bool:
    if word == other:
        return True
    if min(len(word), len(other)) >= 4 and (word.startswith(other) or other.startswith(word)):
        return True
    # A misspelling ("alligence"/"allegiance"), not another name ("iceland"/"ireland"): long words, 2 edits.
    # rapidfuzz's C Levenshtein with a cutoff stops once 2 edits are passed (a pure-Python table was O(n·m)).
    if min(len(word), len(other)) < 8 or abs(len(word) - len(other)) > 2:
        return False
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(word, other, score_cutoff=2) <= 2


def _show(numbers: Counter[int]) -> list[int]:
    return sorted(numbers.elements())
