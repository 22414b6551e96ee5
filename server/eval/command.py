"""``mentee eval`` put together: the stream from a QA file, a client of the server under test (a running one, or
this process's own mentee), the always-teacher baseline, the anchors, the folder it writes as it goes, the
report and the plots. The CLI only parses the options."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from ..core.qa_files import read_qa_file
from .folder import EvalFolder
from .report import build_report, write_plots
from .run import EvalOptions, Evaluation, TurnCounter
from .stream import build_stream, load_paraphrases

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..service import Mentee


@dataclass(frozen=True)
class EvalRequest:
    """What ``mentee eval`` was asked to do (its options; see ``mentee eval --help``)."""

    qa_file: Path
    server: str | None = None
    limit: int | None = None
    repeat: int = 1
    paraphrases: Path | None = None
    train_every: int | None = None
    anchors: str | None = None
    anchors_limit: int = 64
    bucket: int = 100
    baseline: bool = True
    seed: int = 0
    out: Path | None = None
    resume: bool = False


def run_eval(
    request: EvalRequest,
    settings: Settings,
    *,
    start_mentee: Callable[[], Mentee],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Replay the stream through the server (``start_mentee`` gives this process's own when there is none) and
    write report.json, turns.jsonl and the plots; the report."""
    from tqdm import tqdm

    from ..clients.http import MenteeClient
    from ..clients.local_server import in_process_client
    from ..teachers import make_teacher

    options = EvalOptions(
        repeat=request.repeat,
        train_every=request.train_every,
        bucket=request.bucket,
        price_in_per_mtok=settings.teacher_price_in_per_mtok,
        price_out_per_mtok=settings.teacher_price_out_per_mtok,
    )
    if request.resume and request.out is None:
        raise ConfigError("--resume needs --out: the folder of the run to continue")
    rows = read_qa_file(request.qa_file)[: request.limit]
    pairs = load_paraphrases(request.paraphrases) if request.paraphrases is not None else None
    stream = build_stream(rows, repeat=request.repeat, paraphrases=pairs, seed=request.seed)
    probes = eval_anchors(request.anchors, settings)[: request.anchors_limit]
    teacher = make_teacher(settings) if request.baseline else None
    if request.baseline and teacher is None:
        say("no teacher is configured here, so there is no always-teacher run to compare with")
    setup = {
        "qa_file": str(request.qa_file),
        "questions": len(rows),
        "turns": len(stream),
        "repeat": request.repeat,
        "paraphrases": str(request.paraphrases) if request.paraphrases else None,
        "paraphrased_turns": sum(t.paraphrased for t in stream),
        "train_every": request.train_every,
        "anchors": len(probes),
        "seed": request.seed,
        "baseline": teacher is not None,
    }
    folder = EvalFolder(request.out or Path(f"mentee-eval-{time.strftime('%Y%m%d-%H%M%S')}"))
    with contextlib.ExitStack() as stack:
        if request.server is not None:
            client = MenteeClient.for_settings(request.server, settings, timeout_s=600.0)
            stack.callback(client.close)
        else:
            mentee = stack.enter_context(start_mentee())
            client = stack.enter_context(in_process_client(mentee))
        client.health()  # an unreachable server stops here, not as a run of failed turns
        earlier = folder.open(setup, resume=request.resume)
        stack.callback(folder.close)
        done = len(earlier.turns) if earlier else 0
        bar = stack.enter_context(tqdm(total=len(stream), initial=done, desc="replaying", unit="turn", file=sys.stderr))
        counter = TurnCounter()
        for turn in earlier.turns if earlier else []:
            counter.add(turn)

        def on_turn(turn: dict[str, Any]) -> None:
            folder.add_turn(turn)
            bar.set_postfix(counter.add(turn), refresh=False)
            bar.update()

        evaluation = Evaluation(
            client,
            options,
            baseline=teacher,
            anchors=probes,
            on_turn=on_turn,
            on_event=lambda message: tqdm.write(message, file=sys.stderr),  # stdout carries only the headline
            on_round=folder.add_round,
            on_anchors_before=lambda accuracy: folder.update_state(anchors_before=accuracy),
        )
        if done:
            say(f"resuming {folder.path} after {done} of {len(stream)} turns and {len(earlier.rounds)} rounds")
        result = evaluation.run(stream, earlier=earlier)
        folder.update_state(seconds=result.seconds)
    setup |= {
        "server": request.server or "in-process",
        "teacher": teacher.name if teacher is not None else None,
        "student": settings.student_model or "embedded gemma-3-270m",
    }
    report = build_report(result, options, setup)
    (folder.path / "report.json").write_text(json.dumps(report, indent=1))
    plots = write_plots(report, folder.path)
    say(f"report.json, turns.jsonl and {', '.join(p.name for p in plots) or 'no plots'} in {folder.path}")
    return report


def eval_anchors(choice: str | None, settings: Settings) -> list[dict[str, Any]]:
    """The anchors asked around rounds: a QA file, or the home's held-out check anchors (``None``: those if any)."""
    from ..learning.dataset import load_anchors

    if choice is not None and choice != "held-out":
        return read_qa_file(Path(choice))
    anchors = load_anchors(settings.home)
    if anchors is None or not anchors.split("check"):
        if choice == "held-out":
            msg = f"--anchors held-out: no anchors in {settings.home} (build them: mentee anchors build FILE)"
            raise ConfigError(msg)
        return []
    return [{"question": a.question, "answers": list(a.answers)} for a in anchors.split("check")]
