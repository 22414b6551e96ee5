"""The ``mentee`` command line. Heavy libraries are imported inside the commands, so ``--help`` is instant."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .core.errors import ConfigError, MenteeError

if TYPE_CHECKING:
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

    settings = _settings(ctx)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    check_exposure(host, settings)
    with _start_mentee(settings) as mentee:
        _start_schedule(mentee)
        config = uvicorn.Config(create_app(mentee), host=host, port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        _say(f"mentee serves http://{host}:{port}/v1 (model {settings.api_model_name!r}); Ctrl-C stops it")
        server.run()


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
    import os

    settings = _settings(ctx)
    auth = _ui_auth(host)
    with contextlib.ExitStack() as stack:
        url = server or stack.enter_context(_serving_here(ctx, settings))
        from ..ui.app import launch
        from .clients.http import MenteeClient

        client = MenteeClient(
            url,
            api_key=os.environ.get("MENTEE_API_KEY") or _secret(settings.api_key),
            admin_key=os.environ.get("MENTEE_ADMIN_KEY") or _secret(settings.admin_key),
        )
        stack.callback(client.close)
        _say(f"mentee UI on http://{host}:{port} for the server {url}; Ctrl-C stops it")
        launch(client, server_name=host, server_port=port, inbrowser=open_browser, auth=auth, quiet=True)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _ui_auth(host: str) -> tuple[str, str] | None:
    """The UI holds the admin key: beyond loopback it needs a login (MENTEE_UI_AUTH=user:password)."""
    import os

    login = os.environ.get("MENTEE_UI_AUTH", "")
    if login:
        user, _, password = login.partition(":")
        if not user or not password:
            msg = "MENTEE_UI_AUTH must look like user:password"
            raise ConfigError(msg)
        return user, password
    if not _is_loopback(host):
        msg = f"refusing to serve the UI on {host} without a login: set MENTEE_UI_AUTH=user:password"
        raise ConfigError(msg)
    return None


@contextlib.contextmanager
def _serving_here(ctx: typer.Context, settings: Settings) -> Iterator[str]:
    """``mentee serve`` as a child process on a free loopback port, stopped on the way out; its URL."""
    import socket
    import subprocess

    from .clients.http import wait_until_healthy
    from .core.processes import die_with_parent

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    options: _Options = ctx.obj
    command = [sys.executable, "-m", "mentee.server.cli"]
    if options.config_file is not None:
        command += ["--config", str(options.config_file)]
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "ui-serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a killed UI takes its server (and so the student) with it
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _say(f"starting mentee serve for the UI (log: {log_path}; about a minute on a CPU)...")
            wait_until_healthy(url, timeout_s=settings.vllm_startup_timeout_s + 120, process=process, log_path=log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without both keys: anyone who can reach the port could otherwise chat
    on the teacher's bill and rewrite the memory."""
    if not _is_loopback(host) and (settings.api_key is None or settings.admin_key is None):
        msg = (
            f"refusing to listen on {host} without keys: set MENTEE_API_KEY and MENTEE_ADMIN_KEY, or listen on "
            "127.0.0.1"
        )
        raise ConfigError(msg)


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
            f"{gate.get('retention')}, anchors {gate.get('anchor_accuracy')} (base {gate.get('base_anchor_accuracy')})"
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
    import os
    import time

    from tqdm import tqdm

    from .core.qa_files import read_qa_file
    from .eval.run import (
        EvalFolder,
        EvalOptions,
        Evaluation,
        TurnCounter,
        build_report,
        build_stream,
        load_paraphrases,
        write_plots,
    )
    from .teachers import make_teacher

    settings = _settings(ctx)
    options = EvalOptions(
        repeat=repeat,
        train_every=train_every,
        bucket=bucket,
        price_in_per_mtok=settings.teacher_price_in_per_mtok,
        price_out_per_mtok=settings.teacher_price_out_per_mtok,
    )
    if resume and out is None:
        raise ConfigError("--resume needs --out: the folder of the run to continue")
    rows = read_qa_file(qa_file)[:limit]
    pairs = load_paraphrases(paraphrases) if paraphrases is not None else None
    stream = build_stream(rows, repeat=repeat, paraphrases=pairs, seed=seed)
    probes = _eval_anchors(anchors, settings)[:anchors_limit]
    teacher = make_teacher(settings) if baseline else None
    if baseline and teacher is None:
        _say("no teacher is configured here, so there is no always-teacher run to compare with")
    setup = {
        "qa_file": str(qa_file),
        "questions": len(rows),
        "turns": len(stream),
        "repeat": repeat,
        "paraphrases": str(paraphrases) if paraphrases else None,
        "paraphrased_turns": sum(t.paraphrased for t in stream),
        "train_every": train_every,
        "anchors": len(probes),
        "seed": seed,
        "baseline": teacher is not None,
    }
    folder = EvalFolder(out or Path(f"mentee-eval-{time.strftime('%Y%m%d-%H%M%S')}"))
    with contextlib.ExitStack() as stack:
        if server is not None:
            from .clients.http import MenteeClient

            client = MenteeClient(
                server,
                api_key=os.environ.get("MENTEE_API_KEY") or _secret(settings.api_key),
                admin_key=os.environ.get("MENTEE_ADMIN_KEY") or _secret(settings.admin_key),
                timeout_s=600.0,
            )
        else:
            client = _in_process_client(stack, settings)
        stack.callback(client.close)
        client.health()  # an unreachable server stops here, not as a run of failed turns
        earlier = folder.open(setup, resume=resume)
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
            _say(f"resuming {folder.path} after {done} of {len(stream)} turns and {len(earlier.rounds)} rounds")
        result = evaluation.run(stream, earlier=earlier)
        folder.update_state(seconds=result.seconds)
    setup |= {
        "server": server or "in-process",
        "teacher": teacher.name if teacher is not None else None,
        "student": settings.student_model or "embedded gemma-3-270m",
    }
    report = build_report(result, options, setup)
    (folder.path / "report.json").write_text(json.dumps(report, indent=1))
    plots = write_plots(report, folder.path)
    _say(f"report.json, turns.jsonl and {', '.join(p.name for p in plots) or 'no plots'} in {folder.path}")
    typer.echo(json.dumps(report["headline"]))


def _eval_anchors(choice: str | None, settings: Settings) -> list[dict[str, Any]]:
    from .core.qa_files import read_qa_file
    from .learning.dataset import load_anchors

    if choice is not None and choice != "held-out":
        return read_qa_file(Path(choice))
    anchors = load_anchors(settings.home)
    if anchors is None or not anchors.split("check"):
        if choice == "held-out":
            msg = f"--anchors held-out: no anchors in {settings.home} (build them: mentee anchors build FILE)"
            raise ConfigError(msg)
        return []
    return [{"question": a.question, "answers": list(a.answers)} for a in anchors.split("check")]


def _in_process_client(stack: contextlib.ExitStack, settings: Settings) -> Any:
    """A client of this process's own mentee (the API app without a socket)."""
    from fastapi.testclient import TestClient

    from .api.app import create_app
    from .clients.http import MenteeClient

    mentee = stack.enter_context(_start_mentee(settings))
    http = stack.enter_context(TestClient(create_app(mentee), base_url="http://mentee.local"))
    return MenteeClient(
        "http://mentee.local",
        api_key=_secret(settings.api_key),
        admin_key=_secret(settings.admin_key),
        timeout_s=600.0,
        http_client=http,
    )


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
            f"{mark} {adapter.version}  {adapter.verdict:8s} new recall {gate.get('new_recall')}  anchors "
            f"{gate.get('anchor_accuracy')}  items {adapter.manifest.get('data', {}).get('new')}"
        )
    if active is None:
        typer.echo("(serving the base model)")


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
