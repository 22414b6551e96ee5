"""Verification of memory hits: a near neighbour is served only if it asks the *same* question.

Embedding distance finds candidates; it cannot tell "province 7" from "province 6" (distance 0.08), "where is
sperm stored" from "where is sperm made", or a question from its negation. Each rule below compares the query
with the remembered question on one thing that changes the answer; a candidate must pass them all. The rules
were chosen on the mined near-duplicate pairs in ``data/near-duplicate-pairs.jsonl`` (see bench/memory.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

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
    reasons = []
    if a.numbers != b.numbers:
        reasons.append(f"numbers differ: {_show(a.numbers)} vs {_show(b.numbers)}")
    elif swapped := _swapped(a.counted, b.counted):
        reasons.append(f"numbers count other things: {swapped}")
    if a.negated != b.negated:
        reasons.append("one is negated, the other not")
    if a.question_words and b.question_words and a.question_words != b.question_words:
        reasons.append(f"question words differ: {sorted(a.question_words)} vs {sorted(b.question_words)}")
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
