"""Verified recall against a plain cosine cache on all 693 mined pairs of data/near-duplicate-pairs.jsonl.

The floors below are the levels reached (bench/memory.py reports the same figures through the full store);
a change to the rules or defaults that loses ground fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mentee.memory.embedder import Embedder
from mentee.memory.verify import verify
from mentee.server.core.config import load_settings

DATA = Path(__file__).resolve().parent.parent / "data"


def test_verified_recall_beats_a_plain_cosine_cache(embedder: Embedder) -> None:
    pairs = [json.loads(line) for line in (DATA / "near-duplicate-pairs.jsonl").read_text().splitlines()]
    first = np.array(embedder.embed([p["q1"] for p in pairs]))
    second = np.array(embedder.embed([p["q2"] for p in pairs]))
    distance = 1.0 - np.sum(first * second, axis=1)
    same = np.array([p["same_answer"] for p in pairs])
    max_distance = load_settings().memory_max_distance
    served = (distance <= max_distance) & np.array([verify(p["q2"], p["q1"]).same for p in pairs])

    hit_rate, false_rate = served[same].mean(), served[~same].mean()
    threshold = np.quantile(distance[same], hit_rate)  # the plain cache, tuned to the same hit rate
    baseline_false = (distance[~same] <= threshold).mean()
    assert hit_rate >= 0.62
    assert false_rate <= 0.121
    assert false_rate / baseline_false <= 0.90
    # At mentee's own distance threshold, the plain cache would serve a third of the near-misses.
    assert (distance[~same] <= max_distance).mean() >= 3 * false_rate
