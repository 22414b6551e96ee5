"""The student as a verifier: the real student asked "same question?" through vLLM, for the learned verifier's
uncertain middle band only, against the learned verifier alone.

Run: ``.venv/bin/python bench/verifier_student.py`` (the embedded Gemma 3 270M unless MENTEE_STUDENT_MODEL says
otherwise; progress on stderr, one final JSON line on stdout).

For each pair of ``data/near-duplicate-pairs-clean.jsonl`` within ``memory_max_distance`` that no veto refuses
and whose learned probability is within ``BAND`` of the threshold, the student reads a two-example prompt (made-up
questions, none from the data) and its next-token log-probabilities of " yes" and " no" decide; elsewhere the
learned verifier's verdict stands. The band is fixed beforehand, not tuned. Figures per split as in
bench/memory.py, with the student's cost per asked pair.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import openai

from mentee.memory.embedder import SentenceTransformerEmbedder
from mentee.memory.verify import packaged_verifier, vetoes
from mentee.server import Student, load_settings

DATA = Path(__file__).resolve().parent.parent / "data"
BAND = 0.2
PROMPT = (
    "Do the two questions ask for the same answer? Answer yes or no.\n"
    "Q1: who wrote the novel dracula\nQ2: who is the author of dracula\nSame: yes\n"
    "Q1: where is the eiffel tower\nQ2: when was the eiffel tower built\nSame: no\n"
    "Q1: {q1}\nQ2: {q2}\nSame:"
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def student_says_same(client: openai.OpenAI, model: str, q1: str, q2: str) -> bool:
    """Whether " yes" outweighs " no" among the student's top next tokens (absent: -inf)."""
    response = client.completions.create(
        model=model, prompt=PROMPT.format(q1=q1, q2=q2), max_tokens=1, temperature=0.0, logprobs=20
    )
    top = (response.choices[0].logprobs.top_logprobs or [{}])[0]
    weight = {"yes": -math.inf, "no": -math.inf}
    for token, logprob in top.items():
        word = token.strip().lower()
        if word in weight:
            weight[word] = max(weight[word], logprob)
    return weight["yes"] > weight["no"]


def figures(served: np.ndarray, same: np.ndarray, distance: np.ndarray) -> dict[str, float | None]:
    hit_rate, false_rate = float(served[same].mean()), float(served[~same].mean())
    threshold = float(np.quantile(distance[same], hit_rate))
    baseline_false = float((distance[~same] <= threshold).mean())
    return {
        "hit_rate": round(hit_rate, 3),
        "false_hit_rate": round(false_rate, 3),
        "baseline_false_hit_rate": round(baseline_false, 3),
        "false_hit_ratio": round(false_rate / baseline_false, 3) if baseline_false else None,
    }


def main() -> None:
    settings = load_settings()
    verifier = packaged_verifier()
    pairs = [json.loads(line) for line in (DATA / "near-duplicate-pairs-clean.jsonl").read_text().splitlines()]
    embedder = SentenceTransformerEmbedder()
    first = np.array(embedder.embed([p["q1"] for p in pairs]))
    second = np.array(embedder.embed([p["q2"] for p in pairs]))
    distance = 1.0 - np.sum(first * second, axis=1)
    learned, band = [], []
    for pair, d in zip(pairs, distance, strict=True):
        near = d <= settings.memory_max_distance
        vetoed = bool(vetoes(pair["q2"], pair["q1"]))
        score = verifier.score(pair["q2"], pair["q1"], float(d)) if near and not vetoed else 0.0
        learned.append(near and not vetoed and score >= verifier.threshold)
        band.append(near and not vetoed and abs(score - verifier.threshold) <= BAND)
    say(f"{sum(band)} of {len(pairs)} pairs in the middle band")
    started = time.perf_counter()
    with Student(settings) as student:
        say(f"student ready in {time.perf_counter() - started:.1f} s")
        client = openai.OpenAI(base_url=f"{student.url}/v1", api_key="not-needed")
        model = settings.student_served_name
        student_says_same(client, model, "warm up", "warm up")
        asked_at = time.perf_counter()
        combined = list(learned)
        for index, pair in enumerate(pairs):
            if band[index]:
                combined[index] = student_says_same(client, model, pair["q1"], pair["q2"])
        per_pair_ms = (time.perf_counter() - asked_at) * 1000 / max(1, sum(band))
    same = np.array([bool(p["same_question"]) for p in pairs])
    split = np.array([p["split"] for p in pairs])
    learned_a, combined_a, band_a = np.array(learned), np.array(combined), np.array(band)
    result: dict = {
        "bench": "verifier_student",
        "machine": platform.machine(),
        "student": settings.student_model or "embedded gemma-3-270m",
        "band": BAND,
        "student_ms_per_pair": round(per_pair_ms, 1),
    }
    for name in ("tune", "held", "other"):
        mask = split == name
        agree = float((combined_a[mask & band_a] == same[mask & band_a]).mean()) if (mask & band_a).any() else None
        result[name] = {
            "in_band": int((mask & band_a).sum()),
            "student_right_in_band": round(agree, 3) if agree is not None else None,
            "learned_right_in_band": round(float((learned_a[mask & band_a] == same[mask & band_a]).mean()), 3)
            if (mask & band_a).any()
            else None,
            "learned": figures(learned_a[mask], same[mask], distance[mask]),
            "learned_and_student": figures(combined_a[mask], same[mask], distance[mask]),
        }
        say(f"{name}: {json.dumps(result[name])}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
