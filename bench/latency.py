"""End-to-end latency of ``/v1/chat/completions`` by source: memory, student, teacher (a local teacher).

Run: ``.venv/bin/python bench/latency.py [--questions 20] [--home DIR]`` (the embedded Gemma 3 270M unless
MENTEE_STUDENT_MODEL says otherwise; the teacher is the local reference teacher on data/nq-open-dev.jsonl, so the
teacher's own time is a lookup and the figure is mentee's overhead around it). ``mentee serve`` is started with an
empty memory and asked through the official openai client, each question both non-streamed (whole answer) and
streamed (time to first chunk):

- teacher: ``--questions`` NQ questions the student does not know (memory empty: student, then teacher);
- memory: the same questions again (verified memory hits);
- student: questions from data/gemma-3-270m-known.jsonl, which the base student answers itself when sure enough
  (the turns are grouped by the source the server reports, whatever it was).

p50 / p95 / mean per source, in ms. One final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
from loop import free_port  # bench/ is on the path when run as a script

from mentee.server.clients.http import wait_until_healthy
from mentee.server.core.errors import MenteeError
from mentee.server.student.models import embedded_known_questions

REPO = Path(__file__).resolve().parent.parent
NQ = REPO / "data" / "nq-open-dev.jsonl"
KNOWN = embedded_known_questions()
MENTEE = str(Path(sys.executable).parent / "mentee")


def timed(client: openai.OpenAI, question: str, *, stream: bool) -> tuple[str, float, float]:
    """(source, seconds to the whole answer, seconds to the first chunk — the whole answer when not streamed)."""
    messages = [{"role": "user", "content": question}]
    started = time.perf_counter()
    if not stream:
        reply = client.chat.completions.create(model="mentee", messages=messages)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        return reply.model_extra["mentee"]["source"], took, took
    first, source = None, "?"
    for chunk in client.chat.completions.create(model="mentee", messages=messages, stream=True):  # type: ignore[arg-type]
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        info = (chunk.model_extra or {}).get("mentee")
        if info is not None:
            source = info["source"]
    end = time.perf_counter()
    return source, end - started, (first or end) - started


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "mean_ms": round(1000 * statistics.mean(ordered), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20, help="questions per source (default 20)")
    parser.add_argument("--home", type=Path, help="a mentee home with a prepared model (default: a temporary one)")
    args = parser.parse_args()
    if args.questions < 2:
        parser.error(f"--questions must be at least 2, got {args.questions}")
    new = [json.loads(line)["question"] for line in NQ.read_text().splitlines()[1000 : 1000 + args.questions]]
    known = [json.loads(line)["question"] for line in KNOWN.read_text().splitlines()[: args.questions]]
    with tempfile.TemporaryDirectory(prefix="mentee-bench-latency-") as scratch:
        home = args.home or Path(scratch)
        subprocess.run(["rm", "-rf", str(home / "memory")], check=True)  # an empty memory every run
        env = {k: v for k, v in os.environ.items() if k != "MENTEE_HOME"}
        env.update(MENTEE_HOME=str(home), MENTEE_TEACHER_QA_FILE=str(NQ), TORCHINDUCTOR_CACHE_DIR=str(home / "ti"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        home.mkdir(parents=True, exist_ok=True)
        log_path = home / "bench-latency-serve.log"
        with log_path.open("w") as log:
            server = subprocess.Popen([MENTEE, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
            try:
                try:
                    wait_until_healthy(url, timeout_s=1800, process=server, log_path=log_path)
                except MenteeError as e:
                    sys.exit(str(e))
                client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=300)
                timed(client, "What is the capital of France?", stream=False)  # warm-up
                samples: dict[str, dict[str, list[float]]] = {}

                def record(question: str, stream: bool) -> None:
                    source, whole, first = timed(client, question, stream=stream)
                    by = samples.setdefault(source, {"whole": [], "first_chunk": []})
                    by["whole"].append(whole)
                    if stream:
                        by["first_chunk"].append(first)

                for number, question in enumerate(new):  # teacher the first time (half streamed, half not)
                    record(question, stream=number % 2 == 1)
                for question in new:  # memory, both ways
                    record(question, stream=False)
                    record(question, stream=True)
                for question in known:  # the student, both ways (its answer is not remembered)
                    record(question, stream=False)
                    record(question, stream=True)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=120)
    result: dict[str, Any] = {
        "bench": "latency",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "teacher": "reference (local QA file)",
    }
    for source, figures in sorted(samples.items()):
        result[source] = {"whole": percentiles(figures["whole"])}
        if figures["first_chunk"]:
            result[source]["first_chunk"] = percentiles(figures["first_chunk"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
