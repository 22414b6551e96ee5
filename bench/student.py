"""Student benchmark: vLLM start-up, time to first token, and decode speed of one 64-token answer.

Run: ``.venv/bin/python bench/student.py`` (the embedded Gemma 3 270M unless MENTEE_STUDENT_MODEL says
otherwise). Prints progress on stderr and one final JSON line on stdout.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time

import openai

from mentee.server import Student, load_settings

ANSWER_TOKENS = 64
REPEATS = 5
PROMPT = "Q: Tell me about the history of Paris.\nA:"


def timed_stream(client: openai.OpenAI, model: str) -> tuple[float, float, int]:
    """(seconds to first token, seconds for the whole answer, tokens) for one streamed 64-token answer."""
    started = time.perf_counter()
    first = None
    tokens = 0
    stream = client.completions.create(
        model=model,
        prompt=PROMPT,
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        logprobs=1,
        stream=True,
        extra_body={"min_tokens": ANSWER_TOKENS, "ignore_eos": True},
    )
    for event in stream:
        for choice in event.choices:
            if choice.logprobs and choice.logprobs.tokens:
                first = first or time.perf_counter()
                tokens += len(choice.logprobs.tokens)
    return (first or time.perf_counter()) - started, time.perf_counter() - started, tokens


def main() -> None:
    settings = load_settings()
    started = time.perf_counter()
    with Student(settings) as student:
        ready = time.perf_counter() - started
        server_startup = student.server.startup_seconds if student.server else None
        print(f"student ready in {ready:.1f} s", file=sys.stderr)
        client = openai.OpenAI(base_url=f"{student.url}/v1", api_key="not-needed")
        warm = timed_stream(client, settings.student_served_name)  # first log-prob request compiles
        print(f"warm-up request {warm[1]:.1f} s", file=sys.stderr)
        runs = [timed_stream(client, settings.student_served_name) for _ in range(REPEATS)]
    decode = [tokens / (total - ttft) for ttft, total, tokens in runs if tokens > 1]
    result = {
        "bench": "student",
        "model": settings.student_model or "embedded gemma-3-270m",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores",
        "startup_s": round(ready, 1),
        "vllm_startup_s": round(server_startup, 1) if server_startup else None,
        "first_request_s": round(warm[1], 2),
        "answer_tokens": runs[0][2],
        "answer_s_median": round(statistics.median(total for _, total, _ in runs), 3),
        "ttft_s_median": round(statistics.median(ttft for ttft, _, _ in runs), 3),
        "tokens_per_s_median": round(statistics.median(tokens / total for _, total, tokens in runs), 1),
        "decode_tokens_per_s_median": round(statistics.median(decode), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
