"""The teaching loop end to end: `mentee calibrate`, then `mentee serve` asked through the official openai client.

Run: ``.venv/bin/python bench/loop.py [--questions 100] [--home DIR]`` (the embedded Gemma 3 270M unless
MENTEE_STUDENT_MODEL says otherwise; the reference teacher on data/nq-open-dev.jsonl). Steps:

1. calibrate the student on ``--calibration`` NQ questions that are not among the asked ones;
2. start ``mentee serve`` and ask ``--questions`` NQ questions twice each: the second time paraphrased where
   data/near-duplicate-pairs.jsonl has a same-answer pair for it, else the same question again;
3. report the share answered by memory / student / teacher (per round and overall), the accuracy (an accepted
   answer contained in the answer, as open-domain QA is scored) overall and by source, the calibration's AUROC
   and threshold, and the latency of memory hits (server-side routing and client round trip).

Progress on stderr; one final JSON line on stdout. ``--home`` reuses a mentee home with a prepared model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from tqdm import tqdm

from mentee.server.clients.http import wait_until_healthy
from mentee.server.core.answers import is_correct
from mentee.server.core.errors import MenteeError

REPO = Path(__file__).resolve().parent.parent
NQ = REPO / "data" / "nq-open-dev.jsonl"
PAIRS = REPO / "data" / "near-duplicate-pairs.jsonl"
MENTEE = str(Path(sys.executable).parent / "mentee")


def pick_questions(count: int) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """``count`` NQ rows (those with a paraphrase first), their paraphrases, and the remaining rows."""
    rows = [json.loads(line) for line in NQ.read_text().splitlines() if line.strip()]
    by_question = {r["question"]: r for r in rows}
    paraphrases: dict[str, str] = {}
    for line in PAIRS.read_text().splitlines():
        pair = json.loads(line)
        usable = pair["set"] == "nq-open-dev" and pair["same_answer"] and pair["q2"] in by_question
        if usable and pair["q1"] in by_question and pair["q1"] not in paraphrases:
            paraphrases[pair["q1"]] = pair["q2"]
    chosen: list[dict[str, Any]] = []
    taken: set[str] = set()
    for first, second in paraphrases.items():  # questions with a paraphrase first, no question used twice
        if len(chosen) < count and first not in taken and second not in taken:
            chosen.append(by_question[first])
            taken |= {first, second}
    chosen += [r for r in rows if r["question"] not in taken][: count - len(chosen)]
    used = {r["question"] for r in chosen} | {paraphrases.get(r["question"], "") for r in chosen}
    rest = [r for r in rows if r["question"] not in used]
    return chosen, {r["question"]: paraphrases[r["question"]] for r in chosen if r["question"] in paraphrases}, rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=100, help="NQ questions asked twice each.")
    parser.add_argument("--calibration", type=int, default=200, help="Other NQ questions to calibrate on.")
    parser.add_argument("--home", type=Path, default=None, help="mentee home to use (default: a temp folder).")
    args = parser.parse_args()

    chosen, paraphrases, rest = pick_questions(args.questions)
    home = args.home or Path(tempfile.mkdtemp(prefix="mentee-bench-loop-"))
    env = {k: v for k, v in os.environ.items() if k != "MENTEE_HOME"}
    env.update(MENTEE_HOME=str(home), MENTEE_TEACHER_QA_FILE=str(NQ))
    for stale in ("memory", "calibration.json"):  # a fresh memory and calibration every run
        subprocess.run(["rm", "-rf", str(home / stale)], check=True)

    calibration_file = home / "calibration-questions.jsonl"
    home.mkdir(parents=True, exist_ok=True)
    calibration_file.write_text("".join(json.dumps(r) + "\n" for r in rest[: args.calibration]))
    print(f"calibrating on {args.calibration} held-out NQ questions...", file=sys.stderr)
    started = time.perf_counter()
    calibrated = subprocess.run(
        [MENTEE, "calibrate", str(calibration_file), "--json", "--limit", str(args.calibration)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if calibrated.returncode != 0:
        sys.exit(f"mentee calibrate failed:\n{calibrated.stderr[-3000:]}")
    calibration = json.loads(calibrated.stdout)
    calibration_seconds = time.perf_counter() - started
    print(f"calibration: {calibration}", file=sys.stderr)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / "bench-serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([MENTEE, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
        try:
            try:
                serve_startup = wait_until_healthy(url, timeout_s=1800, process=server, log_path=log_path)
            except MenteeError as e:
                sys.exit(str(e))
            print(f"mentee serve ready in {serve_startup:.0f} s", file=sys.stderr)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=300)
            turns = ask_all(client, chosen, paraphrases)
            stats = httpx.get(f"{url}/v1/mentee/stats", timeout=30).json()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
    print(json.dumps(report(turns, calibration, stats, calibration_seconds, serve_startup, len(paraphrases))))


def ask_all(client: openai.OpenAI, chosen: list[dict[str, Any]], paraphrases: dict[str, str]) -> list[dict[str, Any]]:
    accepted = {r["question"]: r["answers"] for r in chosen}
    plan = [(1, r["question"], r["answers"]) for r in chosen]
    for r in chosen:
        second = paraphrases.get(r["question"], r["question"])
        plan.append((2, second, accepted[r["question"]]))  # paraphrases share the answer (same_answer pairs)
    turns = []
    for round_, question, answers in tqdm(plan, desc="asking", file=sys.stderr):
        started = time.perf_counter()
        response = client.chat.completions.create(model="mentee", messages=[{"role": "user", "content": question}])
        took = time.perf_counter() - started
        info = response.model_extra["mentee"]
        text = response.choices[0].message.content or ""
        turns.append(
            {
                "round": round_,
                "question": question,
                "answer": text,
                "source": info["source"],
                "correct": is_correct(text, answers),
                "server_seconds": info["seconds"],
                "client_seconds": took,
                "low_confidence": info["low_confidence"],
            }
        )
    return turns


def shares(turns: list[dict[str, Any]]) -> dict[str, float]:
    return {s: round(sum(t["source"] == s for t in turns) / len(turns), 3) for s in ("memory", "student", "teacher")}


def accuracy(turns: list[dict[str, Any]]) -> float | None:
    return round(sum(t["correct"] for t in turns) / len(turns), 3) if turns else None


def report(
    turns: list[dict[str, Any]],
    calibration: dict[str, Any],
    stats: dict[str, Any],
    calibration_seconds: float,
    serve_startup: float,
    paraphrased: int,
) -> dict[str, Any]:
    hits = [t for t in turns if t["source"] == "memory"]
    return {
        "bench": "loop",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "questions": len(turns) // 2,
        "paraphrased_second_asks": paraphrased,
        "shares": shares(turns),
        "shares_first_round": shares([t for t in turns if t["round"] == 1]),
        "shares_second_round": shares([t for t in turns if t["round"] == 2]),
        "accuracy": accuracy(turns),
        "accuracy_by_source": {
            s: accuracy([t for t in turns if t["source"] == s]) for s in ("memory", "student", "teacher")
        },
        "low_confidence_answers": sum(t["low_confidence"] for t in turns),
        "calibration": {
            k: calibration[k] for k in ("questions", "correct", "auroc", "threshold", "precision", "coverage")
        },
        "memory_hit_p50_ms": {
            "server": round(statistics.median(t["server_seconds"] for t in hits) * 1000, 1) if hits else None,
            "client": round(statistics.median(t["client_seconds"] for t in hits) * 1000, 1) if hits else None,
        },
        "student_answer_p50_s": _p50([t["client_seconds"] for t in turns if t["source"] == "student"]),
        "teacher_answer_p50_s": _p50([t["client_seconds"] for t in turns if t["source"] == "teacher"]),
        "teacher_calls": stats["teacher"]["calls"] if stats.get("teacher") else None,
        "teacher_calls_avoided": stats["teacher_calls_avoided"],
        "calibration_seconds": round(calibration_seconds, 1),
        "serve_startup_seconds": round(serve_startup, 1),
    }


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


if __name__ == "__main__":
    main()
