"""Memory benchmark: the query embedding, recall latency with 10,000 records, and verified recall against a plain
cosine cache on question pairs never tuned on.

Run: ``.venv/bin/python bench/memory.py`` (progress on stderr, one final JSON line on stdout).

1. Embedding: one query's embedding, p50, with torch and with the ONNX runtime (``memory_embed_runtime``).
2. Latency: 10,000 real questions (NQ-open dev + TriviaQA dev) in an embedded Chroma, the default (ONNX) embedder;
   p50/p95 of ``recall`` with the embedding included, and on precomputed embeddings.
3. Near-misses: for each pair of ``data/near-duplicate-pairs-clean.jsonl``, remember q1 and recall q2 through the
   store; the paraphrase hit rate (``same_question: true``) and the false-hit rate (``false``) for the learned
   verifier (the default) and the rules, beside a plain cosine-threshold cache tuned to the same hit rate on the
   same pairs, for each split: ``tune`` (what the learned verifier was trained on), ``held`` (held back, same
   sources: NQ-open and TriviaQA) and ``other`` (WebQuestions, another source, never tuned on).
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
from mentee.memory.verify import RuleVerifier, packaged_verifier

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


def embedding_speed(embedders: dict[str, SentenceTransformerEmbedder], questions: list[str]) -> dict[str, float]:
    """One query's embedding, p50 over ``questions`` (none of them cached), for each runtime."""
    result = {}
    for name, embedder in embedders.items():
        embedder.embed_one("warm up")
        spent = []
        for question in questions:
            started = time.perf_counter()
            embedder.embed([question])
            spent.append((time.perf_counter() - started) * 1000)
        result[f"embed_{name}_p50_ms"] = round(statistics.median(spent), 2)
    return result


def near_misses(memory: Memory) -> dict[str, dict]:
    """Per split, the learned verifier (through ``recall``), the rules (on the same nearest record) and the plain
    cache, each at its hit rate and false-hit rate."""
    pairs = read_jsonl("near-duplicate-pairs-clean.jsonl")
    rules = RuleVerifier()
    learned_served, rules_served, distances = [], [], []
    for pair in pairs:
        namespace = f"pair-{pair['index']}"
        memory.remember(pair["q1"], pair["a1"][0], source="bench", namespace=namespace)
        embedding = memory.embed(pair["q2"])
        nearest = memory.search(pair["q2"], namespace=namespace, k=1, embedding=embedding)[0]
        learned_served.append(memory.recall(pair["q2"], namespace=namespace, embedding=embedding) is not None)
        rules_served.append(
            nearest.distance <= memory.max_distance and rules.check(pair["q2"], pair["q1"], nearest.distance).same
        )
        distances.append(nearest.distance)
    learned_a, rules_a, distance_a = np.array(learned_served), np.array(rules_served), np.array(distances)
    same_a = np.array([bool(p["same_question"]) for p in pairs])
    split_a = np.array([p["split"] for p in pairs])
    result: dict[str, dict] = {}
    for split in ("tune", "held", "other"):
        in_split = split_a == split
        same, distance = same_a[in_split], distance_a[in_split]
        figures: dict = {"pairs_same": int(same.sum()), "pairs_different": int((~same).sum())}
        for name, served in (("learned", learned_a[in_split]), ("rules", rules_a[in_split])):
            hit_rate, false_rate = float(served[same].mean()), float(served[~same].mean())
            # The plain cache: serve whenever the distance is under a threshold, tuned to this verifier's hit rate.
            threshold = float(np.quantile(distance[same], hit_rate))
            baseline_false = float((distance[~same] <= threshold).mean())
            figures[name] = {
                "hit_rate": round(hit_rate, 3),
                "false_hit_rate": round(false_rate, 3),
                "baseline_threshold": round(threshold, 3),
                "baseline_hit_rate": round(float((distance[same] <= threshold).mean()), 3),
                "baseline_false_hit_rate": round(baseline_false, 3),
                "false_hit_ratio": round(false_rate / baseline_false, 3) if baseline_false else None,
            }
        figures["baseline_at_max_distance"] = {
            "hit_rate": round(float((distance[same] <= memory.max_distance).mean()), 3),
            "false_hit_rate": round(float((distance[~same] <= memory.max_distance).mean()), 3),
        }
        result[split] = figures
    return result


def meets(figures: dict, hit_rate: float, ratio: float) -> bool:
    return bool(
        figures["hit_rate"] >= hit_rate
        and figures["false_hit_ratio"] is not None
        and figures["false_hit_ratio"] <= ratio
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mentee-bench-memory-") as folder:
        onnx = SentenceTransformerEmbedder(runtime="onnx", onnx_dir=Path(folder) / "onnx")
        torch_embedder = SentenceTransformerEmbedder(runtime="torch")
        questions = [(r["question"], r["answers"][0]) for r in read_jsonl("nq-open-dev.jsonl") if r["answers"]]
        questions += [(r["question"], r["answers"][0]) for r in read_jsonl("triviaqa-dev.jsonl") if r["answers"]]
        questions = questions[:RECORDS]
        speed = embedding_speed({"torch": torch_embedder, "onnx": onnx}, [q for q, _ in questions[-200:]])
        say(f"embedding: {speed}")
        memory = Memory(path=Path(folder) / "memory", embedder=onnx, verifier=packaged_verifier())
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
        say(f"near-duplicate pairs: {json.dumps(accuracy)}")
        memory.close()
    held, other = accuracy["held"]["learned"], accuracy["other"]["learned"]
    result = {
        "bench": "memory",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "records": stored,
        "verifier": packaged_verifier().trained_on.get("chosen", "learned"),
        **speed,
        **timing,
        "pairs": accuracy,
        "target_embed_under_6ms": speed["embed_onnx_p50_ms"] < 6,
        "target_recall_p50_under_15ms": timing["recall_p50_ms"] <= 15,
        "target_held_hit_0.8_at_half_the_false_hits": meets(held, 0.8, 0.5),
        "target_other_within_0.05": meets(other, 0.75, 0.55),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
