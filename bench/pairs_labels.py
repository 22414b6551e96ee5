"""Build ``data/near-duplicate-pairs-clean.jsonl``: the mined near-duplicate pairs with a *question* label and a split.

Run: ``.venv/bin/python bench/pairs_labels.py`` (rewrites the file; the result is committed, this is its recipe).

The mined label ``same_answer`` compares answer strings; what the memory must learn is whether two questions ask
the same thing. The clean label ``same_question`` is:

1. ``same_answer`` as mined;
2. set to true where the two answer lists overlap once normalised as the open-QA literature does (case-folded,
   punctuation and articles dropped; equal, or one a whole-word span of the other) — answers that differ only in
   form ("the probation officer" / "probation officer") — unless the hand review below says otherwise;
3. the hand review (``REVIEWED`` below, each with its reason): every ``same_answer: true`` pair and every pair of
   step 2 was read; where the two questions ask about different things (another country, film, year, role) that
   happen to share an answer, the label is false, and where a step-2 pair asks different things it stays false.
   Of the remaining ``same_answer: false`` pairs, those a plain cosine cache would serve (embedding distance at
   most ``REVIEW_DISTANCE``, as bench/memory.py measures it; this script does not embed) were read too.

``relabel`` says which step changed a label (``null`` when none did). ``split`` is ``tune`` or ``held`` for the
NQ-open and TriviaQA pairs, chosen by question: the pairs form groups through shared questions, each group goes
whole to one side by a hash of its first question, so no question is in both; ``other`` for the WebQuestions
pairs, a second source never tuned on.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
SOURCE = DATA / "near-duplicate-pairs.jsonl"
TARGET = DATA / "near-duplicate-pairs-clean.jsonl"
OTHER_SOURCE = "webquestions-test"
TUNE_SHARE = 0.6
REVIEW_DISTANCE = 0.20  # memory_max_distance: what a cosine cache at mentee's distance serves

# Pair index in near-duplicate-pairs.jsonl -> (same question?, why). Read by hand.
REVIEWED: dict[int, tuple[bool, str]] = {
    6: (True, "the same show's cast, reworded"),
    9: (True, "is coming back / does come back"),
    10: (True, "'the usa' / 'usa'"),
    14: (True, "which team has the most, reworded"),
    61: (True, "the same song's title, spelled another way"),
    62: (True, "the same change, 'the us' added"),
    63: (True, "coach / manager"),
    64: (True, "coach / managers"),
    93: (True, "'hanged' / 'to be hanged'"),
    94: (True, "'car' / 'in car', a typo"),
    95: (True, "'conservation of mass' / 'the law of conservation of mass'"),
    129: (True, "'did open' / 'was opened'"),
    136: (True, "split / separate"),
    137: (True, "split / divide"),
    148: (True, "start / enter"),
    191: (True, "'you' / 'i'"),
    197: (True, "singular / plural"),
    224: (True, "'the first' added"),
    231: (True, "what part of / where in"),
    235: (True, "'the movie' added"),
    243: (True, "recorded / sang the original"),
    254: (True, "started / created"),
    255: (True, "was started / did start"),
    262: (True, "the monarchs / the king"),
    274: (True, "mobile / portable"),
    279: (True, "is / played, the 1939 film"),
    280: (True, "the same record, reworded"),
    290: (True, "was / played, the 1939 film"),
    308: (True, "the same games, reworded"),
    321: (True, "'the book' added"),
    393: (True, "what date / when"),
    403: (True, "with or without the middle initial"),
    414: (True, "'union or confederate' added"),
    417: (True, "a typo ('en' for 'in')"),
    422: (True, "what country / where"),
    500: (True, "national / main language"),
    630: (True, "did / does, reworded"),
    670: (True, "a word missing ('they in')"),
    21: (False, "who wrote vs who produced the song"),
    30: (False, "another hotel (Orleans vs Stratosphere)"),
    83: (False, "another character (Brian vs Stewie)"),
    123: (False, "another film (How to Train Your Dragon vs its sequel)"),
    128: (False, "the finalists vs the winner"),
    207: (False, "the test at Pokhran (1974 and 1998) vs the first test"),
    234: (False, "another team (Eagles vs Seahawks)"),
    252: (False, "who sings vs who wrote"),
    300: (False, "another country (Israel vs Turkey)"),
    319: (False, "another game (Shadow of Mordor vs Shadow of War)"),
    341: (False, "another thing worn (hwagwan vs barrette)"),
    392: (False, "another period (1923-1929 vs 1925-1929)"),
    409: (False, "another country (Egypt vs Poland)"),
    416: (False, "killed with what vs by whom"),
    423: (False, "one book of several vs the 1859 book"),
    441: (False, "who fought vs where it was fought"),
    443: (False, "another season (2011 vs 2012)"),
    472: (False, "another people (Navajo vs Colombians)"),
    475: (False, "another people (Navajo vs Australians)"),
    476: (False, "another people (Navajo vs the Bahamas)"),
    479: (False, "another people (Navajo vs the UK)"),
    481: (False, "another country (Iraq vs Germany)"),
    498: (False, "a team now vs in 2013"),
    511: (False, "another country (Libya vs Cuba)"),
    518: (False, "another language (English vs German)"),
    531: (False, "in the finals vs won the cup"),
    547: (False, "an airport vs a state"),
    550: (False, "a team in 2003 vs now"),
    552: (False, "after the revolution vs today"),
    556: (False, "another country (Australia vs Japan)"),
    562: (False, "another people (Australians vs Italians)"),
    577: (False, "what he ruled vs his son"),
    608: (False, "another people (Greeks vs Ukrainians)"),
    612: (False, "another place (Argentina vs Massachusetts)"),
    616: (False, "a team in 2011 vs now"),
    641: (False, "a team in 2010 vs now"),
    645: (False, "another country (Australia vs the Bahamas)"),
    648: (False, "another country (Australia vs the UK)"),
    655: (False, "another country (the Bahamas vs the UK)"),
    667: (False, "studied at vs taught at"),
}


def normalise(text: str) -> str:
    text = "".join(" " if c in string.punctuation else c for c in text.lower())
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def answers_overlap(a1: list[str], a2: list[str]) -> bool:
    """Equal once normalised, or one a whole-word span of the other."""
    first, second = {normalise(a) for a in a1} - {""}, {normalise(a) for a in a2} - {""}
    if first & second:
        return True
    return any(f" {x} " in f" {y} " or f" {y} " in f" {x} " for x in first for y in second)


def splits(rows: list[dict]) -> list[tuple[str, int]]:
    """Each pair's side (tune/held by question groups: union-find over normalised questions; other for the
    second source) and its group's number (pairs sharing a question share it; the trainer's folds keep groups
    whole)."""
    parent: dict[str, str] = {}

    def find(q: str) -> str:
        while parent.setdefault(q, q) != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    for row in rows:
        parent[find(normalise(row["q1"]))] = find(normalise(row["q2"]))
    groups: dict[str, list[str]] = {}
    for question in list(parent):
        groups.setdefault(find(question), []).append(question)
    side, number = {}, {}
    for root, members in sorted(groups.items(), key=lambda item: min(item[1])):
        digest = int(hashlib.sha256(min(members).encode()).hexdigest()[:8], 16)
        side[root] = "tune" if digest / 0xFFFFFFFF < TUNE_SHARE else "held"
        number[root] = len(number)
    return [
        ("other" if r["set"] == OTHER_SOURCE else side[find(normalise(r["q1"]))], number[find(normalise(r["q1"]))])
        for r in rows
    ]


def main() -> None:
    rows = [json.loads(line) for line in SOURCE.read_text().splitlines() if line.strip()]
    out = []
    for index, (row, (split, group)) in enumerate(zip(rows, splits(rows), strict=True)):
        label, relabel = bool(row["same_answer"]), None
        if not label and answers_overlap(row["a1"], row["a2"]):
            label, relabel = True, "answers differ only in form"
        if index in REVIEWED:
            reviewed, why = REVIEWED[index]
            if reviewed != label or relabel:
                label, relabel = reviewed, f"reviewed: {why}"
        out.append({"index": index, **row, "same_question": label, "relabel": relabel, "split": split, "group": group})
    TARGET.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    counts: dict[tuple[str, bool], int] = {}
    for r in out:
        counts[(r["split"], r["same_question"])] = counts.get((r["split"], r["same_question"]), 0) + 1
    print(json.dumps({f"{s}/{'same' if q else 'different'}": n for (s, q), n in sorted(counts.items())}))
    print(json.dumps({"relabelled": sum(r["relabel"] is not None for r in out)}))


if __name__ == "__main__":
    main()
