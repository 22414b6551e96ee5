"""Load on a running mentee server: N concurrent clients for a while, with mixed sources, and latency by source.

    .venv/bin/python bench/load.py --server http://127.0.0.1:8080 [--clients 16] [--seconds 120] [--qa-file F]

Each client loops until the time is up, choosing at random (--repeat-share): a question not asked before (the
student answers it when it is sure, else the teacher, whose answer is remembered) or one the teacher already
answered (the memory answers it), as real traffic repeats; --student-share of the new ones go with the teacher
switched off (the student answers alone). Keys come from MENTEE_API_KEY. Prints progress on
stderr and one final JSON line: requests by status, 5xx and transport errors, p50 / p95 / max latency by source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

DEFAULT_QA = Path(__file__).resolve().parent.parent / "data" / "nq-open-dev.jsonl"


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def unanswerable(result: dict[str, Any]) -> bool:
    """Asked with the teacher off, and the student had nothing to say: 503 no_source, as the request chose."""
    return bool(result["teacher_off"] and result.get("code") == "no_source")


async def client_loop(
    number: int,
    http: httpx.AsyncClient,
    questions: list[str],
    asked: list[str],
    deadline: float,
    results: list[dict[str, Any]],
    seed: int,
    repeat_share: float,
    student_share: float,
) -> None:
    chooser = random.Random(seed * 1000 + number)
    while time.monotonic() < deadline:
        repeat = chooser.random() < repeat_share
        question = chooser.choice(asked) if (repeat or not questions) and asked else questions.pop()
        alone = not repeat and chooser.random() < student_share
        body: dict[str, Any] = {"model": "mentee", "messages": [{"role": "user", "content": question}]}
        if alone:
            body["mentee"] = {"teacher": False}
        started = time.monotonic()
        try:
            response = await http.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as e:
            results.append({"status": None, "error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - started})
            continue
        seconds = time.monotonic() - started
        record: dict[str, Any] = {"status": response.status_code, "seconds": seconds, "teacher_off": alone}
        if response.status_code == 200:
            info = response.json().get("mentee") or {}
            record["source"] = info.get("source")
            if info.get("memory_id") and question not in asked:
                asked.append(question)
        else:
            record["error"] = response.text[:300]
            record["code"] = (response.json().get("error") or {}).get("code") if response.content else None
        results.append(record)


async def run(
    server: str,
    key: str | None,
    clients: int,
    seconds: float,
    questions: list[str],
    seed: int,
    repeat_share: float,
    student_share: float,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    results: list[dict[str, Any]] = []
    asked: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=300, limits=limits) as http:
        started = time.monotonic()
        deadline = started + seconds

        async def progress() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(10)
                print(f"  {time.monotonic() - started:.0f} s: {len(results)} answers", file=sys.stderr)

        reporter = asyncio.create_task(progress())
        await asyncio.gather(
            *(
                client_loop(n, http, questions, asked, deadline, results, seed, repeat_share, student_share)
                for n in range(clients)
            )
        )
        reporter.cancel()
        elapsed = time.monotonic() - started
    by_status: dict[str, int] = {}
    for r in results:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    by_source: dict[str, Any] = {}
    for source in ("memory", "student", "teacher"):
        latencies = [r["seconds"] for r in results if r.get("source") == source]
        by_source[source] = {
            "answers": len(latencies),
            "p50_s": percentile(latencies, 0.5),
            "p95_s": percentile(latencies, 0.95),
            "max_s": round(max(latencies), 3) if latencies else None,
            "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        }
    return {
        "bench": "load",
        "server": server,
        "clients": clients,
        "repeat_share": repeat_share,
        "student_share": student_share,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "per_second": round(len(results) / elapsed, 2) if elapsed else None,
        "by_status": by_status,
        # A question asked with the teacher off that the student had no answer for: 503 no_source, by request.
        "unanswerable": sum(1 for r in results if unanswerable(r)),
        "server_errors": sum(1 for r in results if (r["status"] or 0) >= 500 and not unanswerable(r)),
        "transport_errors": sum(1 for r in results if r["status"] is None),
        "error_examples": sorted({r["error"] for r in results if "error" in r})[:5],
        "by_source": by_source,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="URL of the mentee server (keys: MENTEE_API_KEY).")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients (default 16).")
    parser.add_argument("--seconds", type=float, default=120.0, help="How long the load lasts (default 120).")
    parser.add_argument("--qa-file", type=Path, default=DEFAULT_QA, help="Questions (JSON Lines with 'question').")
    parser.add_argument("--repeat-share", type=float, default=0.4, help="Share of questions asked again (0.4).")
    parser.add_argument(
        "--student-share", type=float, default=0.0, help="Share of new questions asked with the teacher off (0)."
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or not (0 <= args.repeat_share <= 1 and 0 <= args.student_share <= 1):
        parser.error(
            f"--clients must be at least 1, --seconds above 0, the shares in [0, 1] "
            f"(got {args.clients}, {args.seconds}, {args.repeat_share}, {args.student_share})"
        )
    if not args.qa_file.is_file():
        parser.error(f"no such QA file: {args.qa_file}")
    questions = [json.loads(line)["question"] for line in args.qa_file.read_text().splitlines() if line.strip()]
    random.Random(args.seed).shuffle(questions)
    report = asyncio.run(
        run(
            args.server.rstrip("/"),
            os.environ.get("MENTEE_API_KEY"),
            args.clients,
            args.seconds,
            questions,
            args.seed,
            args.repeat_share,
            args.student_share,
        )
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
