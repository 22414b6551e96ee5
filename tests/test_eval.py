"""`mentee eval`'s parts: the stream, the replay through the real API in-process (scripted student, real memory, a
LangChain teacher), the report and its plots, and the command's refusals. Against vLLM: test_eval_server.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mentee.memory.embedder import Embedder
from mentee.server.clients.http import MenteeClient
from mentee.server.core.errors import ConfigError
from mentee.server.eval.folder import EvalFolder
from mentee.server.eval.report import build_report, summarize_turns, write_plots
from mentee.server.eval.run import EvalOptions, EvalResult, Evaluation, RoundRecord
from mentee.server.eval.stream import build_stream, load_paraphrases
from mentee.server.service import Mentee
from mentee.server.teachers import GuardedTeacher, TeacherLimits
from mentee.server.teachers.reference import ReferenceTeacher
from tests.test_api import make_client

MENTEE = str(Path(sys.executable).parent / "mentee")
REPO = Path(__file__).resolve().parent.parent
ROWS = [
    {"question": "What is the capital of Peru?", "answers": ["Lima"]},
    {"question": "Who wrote the novel Moby-Dick?", "answers": ["Herman Melville", "Melville"]},
    {"question": "What is the capital of France?", "answers": ["Paris"]},
    {"question": "How many legs does a spider have?", "answers": ["eight", "8"]},
]


def test_the_stream_repeats_each_question_later_and_paraphrases_odd_returns(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"q1": "Who wrote the novel Moby-Dick?", "q2": "Moby-Dick was written by whom?", "a2": ["Melville"]})
        + "\n"
        + json.dumps({"q1": "What is the capital of Peru?", "q2": "Peru's capital?", "same_answer": False})
        + "\n"
    )
    paraphrases = load_paraphrases(pairs)
    stream = build_stream(ROWS, repeat=3, paraphrases=paraphrases, seed=7)
    assert len(stream) == 12 and [t.index for t in stream] == list(range(12))
    assert [t.question_id for t in stream if t.occurrence == 0] == [0, 1, 2, 3]  # first asks in file order
    for question_id in range(4):
        asks = [t for t in stream if t.question_id == question_id]
        assert [t.occurrence for t in asks] == [0, 1, 2]  # returns come after the first ask, in order
    moby = [t for t in stream if t.question_id == 1]
    assert [t.paraphrased for t in moby] == [False, True, False]
    assert moby[1].question == "Moby-Dick was written by whom?" and "Herman Melville" in moby[1].answers
    assert not any(t.paraphrased for t in stream if t.question_id == 0)  # not the same answer: no paraphrase
    assert stream == build_stream(ROWS, repeat=3, paraphrases=paraphrases, seed=7)  # seeded
    assert [t.question for t in build_stream(ROWS)] == [r["question"] for r in ROWS]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q1": "only one side"}\n')
    with pytest.raises(ConfigError, match="line 1: needs 'q1' and 'q2'"):
        load_paraphrases(bad)
    with pytest.raises(ConfigError, match="--repeat must be at least 1, got 0"):
        EvalOptions(repeat=0)


@pytest.fixture
def mentee_client(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MenteeClient, Mentee]]:
    http, mentee = make_client(
        tmp_path, embedder, teacher_answers=["Lima", "Herman Melville", "eight"], confidence_threshold=0.5
    )
    with http:
        yield MenteeClient("http://testserver", http_client=http), mentee
    mentee.close()


def teacher_alone(tmp_path: Path, embedder: Embedder, answers: list[str]) -> GuardedTeacher:
    """The always-teacher side: a reference teacher (it counts words as tokens) that knows ``answers``."""
    qa = tmp_path / "teacher-alone.jsonl"
    qa.write_text(
        "".join(
            json.dumps({"question": r["question"], "answers": [a]}) + "\n" for r, a in zip(ROWS, answers, strict=True)
        )
    )
    return GuardedTeacher(ReferenceTeacher(qa, embedder), TeacherLimits())


def test_a_replay_reports_shares_accuracy_and_what_the_teacher_was_spared(
    mentee_client: tuple[MenteeClient, Mentee], tmp_path: Path, embedder: Embedder
) -> None:
    client, mentee = mentee_client
    options = EvalOptions(repeat=2, bucket=4, price_in_per_mtok=1.0, price_out_per_mtok=2.0)
    stream = build_stream(ROWS, repeat=2, seed=1)
    seen: list[dict[str, Any]] = []
    events: list[str] = []
    # The always-teacher side: a second teacher (its own ledger), asked once per distinct question.
    baseline = teacher_alone(tmp_path, embedder, ["Lima", "Herman Melville", "Paris", "seven"])
    evaluation = Evaluation(client, options, baseline=baseline, on_turn=seen.append, on_event=events.append)
    result = evaluation.run(stream)
    assert len(result.turns) == len(seen) == 8 and result.rounds == []
    first = {t["question_id"]: t for t in result.turns if t["occurrence"] == 0}
    again = {t["question_id"]: t for t in result.turns if t["occurrence"] == 1}
    assert [first[i]["source"] for i in range(4)] == ["teacher", "teacher", "student", "teacher"]
    assert [again[i]["source"] for i in range(4)] == ["memory", "memory", "student", "memory"]
    assert all(t["correct"] for t in result.turns)
    assert first[0]["remembered_as"] == "What is the capital of Peru?"
    assert len(baseline.ledger.entries) == 4  # one call per distinct question, charged per turn in the report

    report = build_report(result, options, {"qa_file": "rows"})
    overall = report["overall"]
    assert overall["share"] == {"memory": 0.375, "student": 0.25, "teacher": 0.375}
    assert overall["accuracy"] == 1.0 and overall["accuracy_by_source"]["memory"] == 1.0
    assert (overall["teacher_calls"], overall["teacher_calls_avoided"]) == (3, 5)
    always = overall["always_teacher"]
    assert always["accuracy"] == 0.75 and always["teacher_calls"] == 8  # it said "seven" legs, twice
    # Avoided: what the always-teacher side spent on the 5 turns mentee answered without the teacher.
    spared = [t["teacher_alone"] for t in result.turns if t["source"] != "teacher"]
    assert overall["teacher_tokens_avoided"] == sum(a["tokens_in"] + a["tokens_out"] for a in spared) > 0
    spent_in, spent_out = sum(a["tokens_in"] for a in spared), sum(a["tokens_out"] for a in spared)
    assert overall["cost_avoided"] == pytest.approx((spent_in * 1.0 + spent_out * 2.0) / 1e6)
    assert [b["turns"] for b in report["buckets"]] == [4, 4]
    assert report["headline"]["teacher_calls_per_1000_turns"] == 375.0
    assert report["headline"]["teacher_share_last_bucket"] == report["buckets"][-1]["share"]["teacher"]
    assert mentee.stats()["answers"]["total"] == 8  # the server counted exactly the replayed turns

    plots = write_plots(report, tmp_path)
    assert [p.name for p in plots] == ["sources.png"]  # no rounds, no learning curve
    assert plots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rounds_that_cannot_run_are_reported_and_the_replay_goes_on(
    mentee_client: tuple[MenteeClient, Mentee],
) -> None:
    client, _ = mentee_client
    options = EvalOptions(train_every=2)
    anchors = [{"question": "What is the capital of France?", "answers": ["Paris"]}]
    events: list[str] = []
    result = Evaluation(client, options, anchors=anchors, on_event=events.append).run(build_stream(ROWS))
    assert len(result.turns) == 4 and result.anchors_before == 1.0
    assert len(result.rounds) == 1  # after the 2nd teacher answer; the 3rd never reached another 2
    record = result.rounds[0]
    # A scripted student cannot learn: the server says so (503), and the round is recorded as failed.
    assert record.state == "failed" and "503" in (record.error or "")
    assert (record.after_turn, record.teacher_answers, record.taught_so_far) == (2, 2, 2)
    assert record.taught_accuracy == 0.0 and record.anchor_accuracy == 1.0  # the student alone: no memory
    assert any("round 1: failed" in e for e in events)
    report = build_report(result, options, {})
    assert report["learning_curve"] == [
        {
            "round": 1,
            "after_turn": 2,
            "taught_so_far": 2,
            "taught_accuracy": 0.0,
            "anchor_accuracy": 1.0,
            "state": "failed",
            "seconds": None,
            "gate_retention": None,
            "gate_retention_by_round": {},
            "gate_paraphrase_recall": None,
            "gate_retained_paraphrase_recall": None,
        }
    ]
    assert report["headline"]["anchor_accuracy_before"] == 1.0


def test_a_turn_the_server_refuses_is_counted_as_an_error_not_a_crash(tmp_path: Path, embedder: Embedder) -> None:
    http, mentee = make_client(tmp_path, embedder, api_key="sk-right")
    with http:
        client = MenteeClient("http://testserver", api_key="sk-wrong", http_client=http)
        result = Evaluation(client, EvalOptions()).run(build_stream(ROWS[:2]))
    mentee.close()
    assert [t["source"] for t in result.turns] == ["error", "error"]
    assert "401" in result.turns[0]["error"]
    summary = summarize_turns(result.turns, EvalOptions())
    assert summary["errors"] == 2 and summary["accuracy"] == 0.0


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}
    return subprocess.run(
        [MENTEE, "eval", *args],
        env={**env, "MENTEE_HOME": str(home)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_names_what_is_wrong(tmp_path: Path) -> None:
    missing = run_cli(str(tmp_path / "nope.jsonl"), "--server", "http://127.0.0.1:9", home=tmp_path)
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "Q?", "answers": ["A"]}\n')
    repeat = run_cli(str(qa), "--repeat", "0", home=tmp_path)
    assert repeat.returncode == 2 and "--repeat" in repeat.stderr
    resume = run_cli(str(qa), "--server", "http://127.0.0.1:9", "--resume", home=tmp_path)
    assert resume.returncode == 2 and "--resume needs --out" in resume.stderr
    held_out = run_cli(str(qa), "--server", "http://127.0.0.1:9", "--anchors", "held-out", home=tmp_path)
    assert held_out.returncode == 2 and "no anchors in" in held_out.stderr
    down = run_cli(str(qa), "--server", "http://127.0.0.1:9", "--out", str(tmp_path / "r"), home=tmp_path)
    assert down.returncode == 1 and "cannot reach the mentee server at http://127.0.0.1:9" in down.stderr
    assert "Traceback" not in down.stderr


def test_the_cost_model_prices_teacher_calls_and_the_round_that_spares_them(tmp_path: Path) -> None:
    def turn(index: int, source: str) -> dict[str, Any]:
        spent = (100, 10) if source == "teacher" else (0, 0)
        alone = {"correct": True, "tokens_in": 100, "tokens_out": 10}
        return {"index": index, "source": source, "correct": True, "tokens_in": spent[0], "tokens_out": spent[1]} | {
            "teacher_alone": alone
        }

    turns = [turn(i, "teacher") for i in range(5)] + [turn(i, "memory") for i in range(5, 10)]
    rounds = [RoundRecord(number=1, after_turn=5, teacher_answers=5, state="passed", seconds=3600.0)]
    options = EvalOptions(bucket=5)
    report = build_report(EvalResult(turns=turns, rounds=rounds), options, {})
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "turns.jsonl").write_text("".join(json.dumps(t) + "\n" for t in turns))
    # A million-token price of 1e6: every token costs 1, a teacher answer 110; an hour of training costs 220.
    prices = ["--price-in", "1e6", "--price-out", "1e6", "--train-price-per-hour", "220"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cost.py"), str(tmp_path), *prices], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["teacher_calls_per_1000_turns"] == 500.0
    assert figures["teacher_calls_per_1000_turns_last_bucket"] == 0.0
    assert figures["always_teacher_cost_per_1000_turns"] == 110_000.0
    assert (figures["saving_per_turn_steady"], figures["round_cost"]) == (110.0, 220.0)
    assert figures["break_even_turns_per_round"] == 2
    assert figures["all_rounds_paid_back_at_turn"] == 7  # 2 memory answers after the round paid for it
    halved = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cost.py"), str(tmp_path), *prices, "--round-seconds", "1800"],
        capture_output=True,
        text=True,
    )
    assert halved.returncode == 0, halved.stderr
    assert json.loads(halved.stdout)["round_cost"] == 110.0  # half an hour, as given, not the eval's hour
    missing = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cost.py"), str(tmp_path / "none")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "holds no report.json" in missing.stderr


def test_a_stopped_run_resumes_where_it_stopped(mentee_client: tuple[MenteeClient, Mentee], tmp_path: Path) -> None:
    client, mentee = mentee_client
    options = EvalOptions(train_every=2)
    stream = build_stream(ROWS, repeat=2, seed=3)
    setup = {"qa_file": "rows", "turns": len(stream), "seed": 3}
    folder = EvalFolder(tmp_path / "run")
    assert folder.open(setup, resume=False) is None

    def evaluation(target: EvalFolder) -> Evaluation:
        return Evaluation(client, options, on_turn=target.add_turn, on_round=target.add_round)

    first = evaluation(folder).run(stream[:2])  # Peru and Moby-Dick from the teacher, then the round (503)
    folder.close()
    assert [t["source"] for t in first.turns] == ["teacher", "teacher"] and len(first.rounds) == 1
    # Stopped hard: the round's record never reached the disk, and the next turn's line was cut off.
    (folder.path / EvalFolder.ROUNDS).unlink()
    with (folder.path / EvalFolder.TURNS).open("a") as turns:
        turns.write('{"index": 2, "sour')

    with pytest.raises(ConfigError, match=r"another stream \(seed, turns differ\)"):
        EvalFolder(folder.path).open({**setup, "seed": 4, "turns": 9}, resume=True)
    with pytest.raises(ConfigError, match="already holds a run: --resume continues it"):
        EvalFolder(folder.path).open(setup, resume=False)
    with pytest.raises(ConfigError, match="holds no earlier run"):
        EvalFolder(tmp_path / "elsewhere").open(setup, resume=True)

    again = EvalFolder(folder.path)
    earlier = again.open(setup, resume=True)
    assert earlier is not None and len(earlier.turns) == 2 and earlier.rounds == []
    result = evaluation(again).run(stream, earlier=earlier)
    again.close()
    assert [t["index"] for t in result.turns] == list(range(len(stream)))
    # The round that was due ran first; the turns already answered were not asked again.
    assert len(result.rounds) == 1 and result.rounds[0].after_turn == 2
    assert mentee.stats()["answers"]["total"] == len(stream) + 2 * 2  # + the two student-alone probes, twice
    on_disk = [json.loads(line) for line in (folder.path / EvalFolder.TURNS).read_text().splitlines()]
    assert [t["index"] for t in on_disk] == list(range(len(stream)))
    assert len((folder.path / EvalFolder.ROUNDS).read_text().splitlines()) == 1
