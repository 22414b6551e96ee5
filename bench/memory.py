"""Memory benchmark: recall latency with 10,000 records, and verified recall against a plain cosine cache.

Run: ``.venv/bin/python bench/memory.py`` (progress on stderr, one final JSON line on stdout).

1. Latency: 10,000 real questions (NQ-open dev + TriviaQA dev) in an embedded Chroma; p50/p95 of ``recall``
   with the embedding included, and on precomputed embeddings.
2. Near-misses: for each pair of ``data/near-duplicate-pairs.jsonl``, remember q1 with a1 and recall q2. The hit
   rate on ``same_answer: true`` pairs and the false-hit rate on ``same_answer: false`` pairs, for mentee's
   verified recall and for a plain cosine-threshold cache tuned to the same hit rate, side by side.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mentee.memory.embedder import SentenceTransformerEmbedder
from mentee.memory.store import Memory

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDS = 10_000
QUERIES = 300


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency(memory: Memory, questions: list[str]) -> dict[str, float]:
    with_embedding: list[float] = []
    for question in questions:
        started = time.perf_counter()
        memory.recall(question)
        with_embedding.append((time.perf_counter() - started) * 1000)
    vectors = memory.embedder.embed(questions)
    precomputed: list[float] = []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        memory.recall(question, embedding=vector)
        precomputed.append((time.perf_counter() - started) * 1000)
    embed_only: list[float] = []
    for question in questions[:100]:
        started = time.perf_counter()
        memory.embedder.embed_one(question)
        embed_only.append((time.perf_counter() - started) * 1000)
    return {
        "recall_p50_ms": round(percentile(with_embedding, 50), 2),
        "recall_p95_ms": round(percentile(with_embedding, 95), 2),
        "recall_precomputed_p50_ms": round(percentile(precomputed, 50), 2),
        "recall_precomputed_p95_ms": round(percentile(precomputed, 95), 2),
        "embed_p50_ms": round(statistics.median(embed_only), 2),
    }


def near_misses(memory: Memory) -> dict[str, float | int]:
    pairs = read_jsonl("near-duplicate-pairs.jsonl")
    served, distances, same = [], [], []
    for index, pair in enumerate(pairs):
        namespace = f"pair-{index}"
        memory.remember(pair["q1"], pair["a1"][0], source="bench", namespace=namespace)
        hit = memory.recall(pair["q2"], namespace=namespace)
        nearest = memory.search(pair["q2"], namespace=namespace, k=1)[0]
        served.append(hit is not None)
        distances.append(nearest.distance)
        same.append(bool(pair["same_answer"]))
    served_a, distance_a, same_a = np.array(served), np.array(distances), np.array(same)
    hit_rate = float(served_a[same_a].mean())
    false_rate = float(served_a[~same_a].mean())
    # The plain cache: serve whenever the distance is under a threshold, tuned to mentee's hit rate.
    threshold = float(np.quantile(distance_a[same_a], hit_rate))
    baseline_hit = float((distance_a[same_a] <= threshold).mean())
    baseline_false = float((distance_a[~same_a] <= threshold).mean())
    at_default = float((distance_a[~same_a] <= memory.max_distance).mean())
    return {
        "pairs_same": int(same_a.sum()),
        "pairs_different": int((~same_a).sum()),
        "mentee_hit_rate": round(hit_rate, 3),
        "mentee_false_hit_rate": round(false_rate, 3),
        "baseline_threshold": round(threshold, 3),
        "baseline_hit_rate": round(baseline_hit, 3),
        "baseline_false_hit_rate": round(baseline_false, 3),
        "false_hit_ratio": round(false_rate / baseline_false, 3) if baseline_false else None,
        "baseline_at_mentee_max_distance_hit_rate": round(float((distance_a[same_a] <= memory.max_distance).mean()), 3),
        "baseline_at_mentee_max_distance_false_hit_rate": round(at_default, 3),
    }


def main() -> None:
    embedder = SentenceTransformerEmbedder()
    embedder.embed_one("warm up")
    questions = [(r["question"], r["answers"][0]) for r in read_jsonl("nq-open-dev.jsonl") if r["answers"]]
    questions += [(r["question"], r["answers"][0]) for r in read_jsonl("triviaqa-dev.jsonl") if r["answers"]]
    questions = questions[:RECORDS]
    with tempfile.TemporaryDirectory(prefix="mentee-bench-memory-") as folder:
        memory = Memory(path=folder, embedder=embedder)
        started = time.perf_counter()
        stored = memory.remember_many(questions, source="bench")
        say(f"stored {stored} records in {time.perf_counter() - started:.1f} s")
        # Half asked as stored, half reworded a little (lowercase, no question mark).
        probes = [q for q, _ in questions[: QUERIES // 2]] + [
            q.lower().rstrip("?") for q, _ in questions[-QUERIES // 2 :]
        ]
        timing = latency(memory, probes)
        say(f"latency: {timing}")
        accuracy = near_misses(memory)
        say(f"near-duplicate pairs: {accuracy}")
        memory.close()
    result = {
        "bench": "memory",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "records": stored,
        **timing,
        **accuracy,
        "target_recall_p50_under_15ms": timing["recall_p50_ms"] < 15,
        "target_half_the_false_hits": bool(
            accuracy["false_hit_ratio"] is not None and accuracy["false_hit_ratio"] <= 0.5
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
