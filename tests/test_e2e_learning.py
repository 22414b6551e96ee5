"""End to end with the real Gemma 3 270M: it learns what the reference teacher taught and forgets nothing.

20 NQ-open questions the base student gets wrong are asked once (the teacher answers, the memory keeps them);
one round trains, passes its gate and is hot-loaded; the same 20 questions, asked with memory and teacher off,
are then answered by the student itself; and the held-out anchors (questions the base student answered right,
never trained on) are still answered right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentee.server.core.answers import is_correct
from mentee.server.core.config import load_settings
from mentee.server.service import Mentee
from mentee.server.serving.router import NoSourceError, Switches
from mentee.server.student.models import embedded_known_questions, prepare_embedded_student
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.model, pytest.mark.train, pytest.mark.timeout(2400)]

MENTEE = str(Path(sys.executable).parent / "mentee")
NQ = REPO_ROOT / "data" / "nq-open-dev.jsonl"
KNOWN = embedded_known_questions()


@pytest.fixture(scope="module")
def mentee(gemma_home: Path, gemma_student_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mentee]:
    model = prepare_embedded_student(gemma_home / "models")
    home = tmp_path_factory.mktemp("learning-home")
    # The session's shared Gemma vLLM (test_e2e_gemma's `make demo` starts one of its own), with the model folder
    # for the trainer.
    env = {"MENTEE_HOME": str(home), "MENTEE_STUDENT_MODEL": str(model), "MENTEE_STUDENT_URL": gemma_student_url}
    anchors = subprocess.run(
        [MENTEE, "anchors", "build", str(KNOWN), "--check-share", "0.6"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MENTEE_")}, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert anchors.returncode == 0, anchors.stderr[-3000:]
    settings = load_settings(
        home=home,
        student_model=str(model),
        student_url=gemma_student_url,
        teacher_qa_file=str(NQ),
        confidence_threshold=1.0,  # the base student never answers NQ alone (calibration finds no threshold)
    )
    with Mentee(settings) as running:
        yield running


def test_gemma_learns_taught_answers_and_keeps_its_anchors(mentee: Mentee) -> None:
    assert mentee.student is not None
    wrong = []
    for line in NQ.read_text().splitlines()[:80]:  # the base student gets ~97% of NQ-open wrong
        row = json.loads(line)
        if not is_correct(mentee.student.generate(row["question"]).text, row["answers"]):
            wrong.append(row)
        if len(wrong) == 20:
            break
    assert len(wrong) == 20
    for row in wrong:
        taught = mentee.answer(row["question"])
        assert taught.source == "teacher", taught
        assert is_correct(taught.text, row["answers"])

    outcome = mentee.learner.run_round()
    print(json.dumps({"state": outcome.state, "gate": outcome.gate, "training": outcome.training}, indent=1))
    assert outcome.state == "passed", outcome.gate or outcome.error
    gate = outcome.gate
    assert gate is not None
    assert gate["counts"]["check_anchors"] >= 50
    assert gate["anchor_accuracy"] >= 0.95  # it forgot nothing it knew
    assert mentee.router is not None and mentee.router.adapter == f"student-{outcome.adapter}"

    alone = Switches(memory=False, teacher=False, learn=False)
    right = 0
    for row in wrong:
        try:
            answer = mentee.answer(row["question"], alone)
        except NoSourceError:  # an empty answer: wrong
            continue
        assert answer.source == "student"
        right += is_correct(answer.text, row["answers"])
    assert right >= 18, f"{right}/20 taught answers given by the student alone"
