"""mentee's Gradio UI: chat with the student and watch it learn. It talks to a mentee server over HTTP only.

``mentee ui --server URL`` (keys from ``MENTEE_API_KEY`` / ``MENTEE_ADMIN_KEY``), or ``mentee ui`` alone, which
starts ``mentee serve`` for it. Tabs:

- **Chat**: the teacher connected (one line), example questions and their paraphrases to click; streamed answers,
  each with its source (memory / student / teacher), confidence and adapter, and a plain "not sure" reply when no
  source could answer; with the admin key, the last answer can be corrected in place (a person's trust).
- **Memory**: search, filter, edit and delete remembered items.
- **Learning**: start a round and follow it (step, loss, ETA); the adapters with their gate figures; activate or
  roll back a version.
- **Dashboard**: plots of the answers' sources over time, teacher calls avoided, and each adapter's figures.

``demo`` (module level) is built from the environment (``MENTEE_UI_SERVER``, default http://127.0.0.1:8080), so
``gradio ui/app.py`` works too; every handler is a plain function of a :class:`MenteeClient` and its inputs.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

import gradio as gr
import pandas as pd

from ..server.clients.http import MenteeClient, MenteeClientError

logger = logging.getLogger(__name__)

SOURCES = ("memory", "student", "teacher")
MEMORY_COLUMNS = ["id", "question", "answer", "source", "trust", "learned_by", "disputed_by", "served", "distance"]
ADAPTER_COLUMNS = [
    "version",
    "verdict",
    "active",
    "taught recall",
    "retention",
    "paraphrase recall",
    "anchors",
    "base anchors",
]


def client_from_env(server: str | None = None) -> MenteeClient:
    """A client for ``server`` (else ``MENTEE_UI_SERVER``), keys from ``MENTEE_API_KEY`` / ``MENTEE_ADMIN_KEY``."""
    return MenteeClient(
        server or os.environ.get("MENTEE_UI_SERVER") or "http://127.0.0.1:8080",
        api_key=os.environ.get("MENTEE_API_KEY"),
        admin_key=os.environ.get("MENTEE_ADMIN_KEY"),
    )


def _readable(error: MenteeClientError) -> gr.Error:
    return gr.Error(str(error), title="mentee server")


# -- chat ----------------------------------------------------------------------------------------------------


def badge(info: dict[str, Any] | None) -> str:
    """The line under an answer: where it came from, how sure the student was, which adapter answered."""
    if not info:
        return ""
    parts = [f"`source: {info.get('source')}`"]
    if info.get("confidence") is not None:
        parts.append(f"confidence {info['confidence']:.2f}")
    parts.append(f"adapter: {info.get('adapter') or 'base'}")
    if info.get("low_confidence"):
        parts.append("low confidence (no teacher could answer)")
    return "\n\n" + " · ".join(parts)


def unsure_reply(guess: str, info: dict[str, Any] | None, *, use_teacher: bool = True) -> str:
    """What the chat says when neither the student (below its threshold) nor a teacher could answer: that it is
    not sure, why, what would help, and the student's guess shown as a guess (the API gives the guess with
    ``low_confidence``; ``strict`` or an empty guess gives no answer at all)."""
    info = info or {}
    reasons = " ".join(info.get("reasons") or ())
    confidence, threshold = info.get("confidence"), info.get("threshold")
    student = "The student is not sure"
    if confidence is not None and threshold is not None:
        student += f" (confidence {confidence:.2f}, below its threshold {threshold:.2f})"
    if not use_teacher:
        teacher, helps = "the teacher is switched off here", "switch the teacher on"
    elif "teacher failed" in reasons:
        teacher, helps = "the teacher could not be reached", "try again in a while (the teacher failed)"
    elif "teacher off" in reasons:
        teacher = "no teacher is connected"
        helps = "connect a teacher: `MENTEE_TEACHER_URL` and `MENTEE_TEACHER_MODEL` (any OpenAI-compatible server)"
    else:
        teacher = "the teacher does not know it either"
        helps = (
            "ask one of the examples, connect an LLM teacher (`MENTEE_TEACHER_URL`, `MENTEE_TEACHER_MODEL`), or "
            "teach it yourself under *Correct the last answer*"
        )
    lines = [f"**I'm not sure.** {student}, and {teacher}."]
    if guess.strip():
        lines.append(f"Its guess, likely wrong: _{guess.strip()}_")
    lines.append(f"What would help: {helps}.")
    return "\n\n".join(lines) + badge(info)


def respond(
    client: MenteeClient,
    message: str,
    shown: list[dict[str, str]],
    conversation: list[dict[str, str]],
    use_memory: bool = True,
    use_teacher: bool = True,
) -> Iterator[tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]], dict[str, Any], str]]:
    """Stream the answer to ``message``: (chat as shown, with badges, for the chatbot and its state; the
    conversation as sent, without them; the last answer's info; the cleared input). The whole conversation goes
    with each turn. An answer no source was sure of is shown as :func:`unsure_reply`."""
    text = (message or "").strip()
    if not text:
        raise gr.Error("Type a question first.")
    sent = [*conversation, {"role": "user", "content": text}]
    shown = [*shown, {"role": "user", "content": text}]
    answer, info = "", None
    try:
        for answer, info in client.chat_stream(sent, memory=use_memory, teacher=use_teacher):
            now = [*shown, {"role": "assistant", "content": answer + badge(info)}]
            yield now, now, conversation, {}, ""
    except MenteeClientError as e:
        if not e.no_source:
            raise _readable(e) from e
        # strict mode, or a guess with nothing in it: no answer, said plainly; the question is not kept
        now = [*shown, {"role": "assistant", "content": unsure_reply("", None, use_teacher=use_teacher)}]
        yield now, now, conversation, {}, ""
        return
    last = {"question": text, "answer": answer, **(info or {})}
    shown_answer = unsure_reply(answer, info, use_teacher=use_teacher) if last.get("low_confidence") else None
    now = [*shown, {"role": "assistant", "content": shown_answer or answer + badge(info)}]
    yield now, now, [*sent, {"role": "assistant", "content": answer}], last, ""


def ask_example(
    client: MenteeClient,
    sample: list[str] | None,
    shown: list[dict[str, str]],
    use_memory: bool = True,
    use_teacher: bool = True,
) -> Iterator[tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]], dict[str, Any], str]]:
    """Ask a clicked example (or its paraphrase) as a conversation of its own, so the memory meets it as a question
    standing alone; the chat shown keeps what came before."""
    question = sample[0] if sample else ""
    yield from respond(client, question, shown, [], use_memory, use_teacher)


def orientation(about: dict[str, Any] | None) -> str:
    """The one line above the chat: which teacher is connected, what it knows, and how to connect another."""
    if about is None:
        return "Could not ask the server which teacher it has; ask anything."
    teacher = about.get("teacher") or {}
    connect = "connect an LLM teacher with `MENTEE_TEACHER_URL` and `MENTEE_TEACHER_MODEL` (OpenAI-compatible)"
    if teacher.get("kind") == "reference":
        said = (
            f"Teacher: the offline reference teacher, which knows only the {teacher.get('questions', 0):,} questions "
            f"of `{teacher.get('file')}` and says it does not know anything else; {connect}."
        )
    elif teacher.get("kind") == "none":
        said = f"No teacher is connected: the student answers alone and learns nothing new; {connect}."
    else:
        said = f"Teacher: `{teacher.get('name')}`."
    if about.get("examples"):
        said += " Try an example, then its paraphrase: the teacher answers the first, the memory the second."
    return said


def _about(client: MenteeClient) -> dict[str, Any] | None:
    try:
        return client.about()
    except MenteeClientError as e:
        logger.warning("the server's about route failed: %s", e)
        return None


def correct_last(
    client: MenteeClient,
    corrected: str,
    shown: list[dict[str, str]],
    conversation: list[dict[str, str]],
    last: dict[str, Any],
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]], dict[str, Any], str]:
    """Replace the last answer with a person's: remembered with human trust (the item it came from, if any, is
    corrected in place); the chat shows the correction."""
    answer = (corrected or "").strip()
    if not last or not conversation:
        raise gr.Error("Ask something first: the correction replaces the last answer.")
    if not answer:
        raise gr.Error("Type the right answer to correct the last one.")
    try:
        if last.get("memory_id"):
            record = client.correct(last["memory_id"], answer)
        else:
            record = client.remember(last.get("remembered_as") or last["question"], answer)
    except MenteeClientError as e:
        raise _readable(e) from e
    info = {**last, "answer": answer, "memory_id": record["id"], "source": "person", "confidence": None}
    shown = [*shown[:-1], {"role": "assistant", "content": answer + badge(info)}]
    return shown, shown, [*conversation[:-1], {"role": "assistant", "content": answer}], info, ""


def reset_chat() -> tuple[list[Any], list[Any], list[Any], dict[str, Any]]:
    return [], [], [], {}


# -- memory --------------------------------------------------------------------------------------------------


def search_memory(client: MenteeClient, query: str, source: str, trust: str, learned: str) -> pd.DataFrame:
    """Remembered items: nearest to ``query`` if given, else the newest; filtered by source, trust, learned."""
    try:
        items = client.memory_list(
            (query or "").strip() or None,
            source=(source or "").strip() or None,
            trust=None if trust in ("", "any") else trust,
            learned={"learned": True, "not learned": False}.get(learned),
            limit=200,
        )
    except MenteeClientError as e:
        raise _readable(e) from e
    return pd.DataFrame(
        [{column: item.get(column) for column in MEMORY_COLUMNS} for item in items], columns=MEMORY_COLUMNS
    )


def pick_item(table: pd.DataFrame, event: gr.SelectData) -> tuple[str, str, str]:
    """The clicked row's id, question and answer, into the editor."""
    row = table.iloc[event.index[0]]
    return str(row["id"]), str(row["question"]), str(row["answer"])


def save_item(client: MenteeClient, record_id: str, answer: str) -> str:
    if not record_id:
        raise gr.Error("Pick an item in the table first.")
    if not (answer or "").strip():
        raise gr.Error("The answer is empty; delete the item instead.")
    try:
        record = client.correct(record_id, answer.strip())
    except MenteeClientError as e:
        raise _readable(e) from e
    return f"Saved: {record['question']!r} -> {record['answer']!r} (trust: {record['trust']})"


def delete_item(client: MenteeClient, record_id: str) -> str:
    if not record_id:
        raise gr.Error("Pick an item in the table first.")
    try:
        client.forget(record_id)
    except MenteeClientError as e:
        raise _readable(e) from e
    return f"Deleted {record_id}."


# -- the guided run ------------------------------------------------------------------------------------------


def guided_run(client: MenteeClient, limit: int = 10) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Watch it learn (:class:`~mentee.server.clients.guided.GuidedRun`) with what it does as it does it: (the
    steps so far, the round's progress bar, the before/after table once there is one)."""
    import queue
    import threading

    from ..server.clients.guided import TABLE_COLUMNS, GuidedResult, GuidedRun

    updates: queue.Queue[tuple[str, Any]] = queue.Queue()
    run = GuidedRun(
        client,
        limit=limit,
        on_event=lambda message: updates.put(("event", message)),
        on_round=lambda job: updates.put(("round", job)),
    )

    def work() -> None:
        try:
            updates.put(("done", run.run()))
        except Exception as e:  # shown in the UI; the run's server is unharmed
            updates.put(("error", e))

    threading.Thread(target=work, name="mentee-guided-run", daemon=True).start()
    events: list[str] = []
    bar = progress_html(None)
    empty = pd.DataFrame(columns=TABLE_COLUMNS)
    while True:
        kind, value = updates.get()
        if kind == "event":
            events.append(f"- {value}")
        elif kind == "round":
            bar = progress_html(value)
        elif kind == "error":
            raise gr.Error(str(value), title="guided run") from value
        if kind == "done":
            result: GuidedResult = value
            events.append(
                f"\n**The student alone: {result.right_before} of {len(result.rows)} right before the round, "
                f"{result.right_after} after.** See the Dashboard tab for the answers' sources."
            )
            yield "\n".join(events[-40:]), bar, pd.DataFrame(result.table(), columns=TABLE_COLUMNS)
            return
        yield "\n".join(events[-40:]), bar, empty


# -- learning ------------------------------------------------------------------------------------------------


def start_round(client: MenteeClient) -> tuple[str, str]:
    """Start a learning round: its id and first status."""
    try:
        job = client.train()
    except MenteeClientError as e:
        raise _readable(e) from e
    return job["id"], progress_html(job)


def round_status(client: MenteeClient, job_id: str) -> str:
    if not job_id:
        return progress_html(None)
    try:
        return progress_html(client.train_status(job_id))
    except MenteeClientError as e:
        return f"<p>Could not read the round's status: {e}</p>"


def progress_html(job: dict[str, Any] | None) -> str:
    """A progress bar with the step, loss and ETA; the verdict when the round is over."""
    if not job:
        return "<p>No round started from this page yet.</p>"
    progress = job.get("progress") or {}
    state = job.get("state", "?")
    step, total = progress.get("step"), progress.get("total_steps")
    bar = f'<progress value="{step or 0}" max="{total or 1}" style="width:100%"></progress>' if total else ""
    details = [f"round {job.get('id')}: <b>{state}</b>", f"phase {progress.get('phase', '-')}"]
    if total:
        details.append(f"step {step}/{total}")
    if progress.get("loss") is not None:
        details.append(f"loss {progress['loss']:.3f}")
    if progress.get("eta_s") is not None and state == "running":
        details.append(f"ETA {progress['eta_s']:.0f} s")
    if job.get("adapter"):
        details.append(f"adapter {job['adapter']}")
    gate = job.get("gate") or {}
    if gate.get("reasons"):
        details.append("gate: " + "; ".join(gate["reasons"]))
    if job.get("error"):
        details.append(f"error: {job['error']}")
    return f"{bar}<p>{' · '.join(details)}</p>"


def adapters_table(client: MenteeClient) -> tuple[pd.DataFrame, Any]:
    """The adapters with their gate figures, and the versions that can be activated (passed ones, and base)."""
    try:
        listing = client.adapters()
    except MenteeClientError as e:
        raise _readable(e) from e
    rows = []
    for adapter in listing["data"]:
        gate = adapter.get("gate") or {}
        rows.append(
            {
                "version": adapter["version"],
                "verdict": adapter.get("verdict") or "-",
                "active": adapter["version"] == listing.get("active"),
                "taught recall": gate.get("new_recall"),
                "retention": gate.get("retention"),  # of everything taught by earlier rounds (a sample)
                "paraphrase recall": gate.get("paraphrase_recall"),
                "anchors": gate.get("anchor_accuracy"),
                "base anchors": gate.get("base_anchor_accuracy"),
            }
        )
    choices = ["base", *[r["version"] for r in rows if r["verdict"] == "passed"]]
    return pd.DataFrame(rows, columns=ADAPTER_COLUMNS), gr.update(
        choices=choices, value=listing.get("active") or "base"
    )


def activate(client: MenteeClient, version: str) -> str:
    if not version:
        raise gr.Error("Pick a version (or base) to activate.")
    try:
        active = client.activate(version)["active"]
    except MenteeClientError as e:
        raise _readable(e) from e
    return f"Now serving: {active or 'the base model'}."


# -- dashboard -----------------------------------------------------------------------------------------------


def dashboard(client: MenteeClient) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Plots' data: the share of answers by source per minute, teacher calls made and avoided (cumulative), the
    cost avoided (cumulative, at the mean cost of a teacher answer so far), and each adapter's taught recall and
    anchor accuracy; with a one-line summary."""
    try:
        stats = client.stats()
        listing = client.adapters()
    except MenteeClientError as e:
        raise _readable(e) from e
    teacher = stats.get("teacher") or {}
    answered = (teacher.get("calls") or 0) - (teacher.get("errors") or 0)
    mean_cost = (teacher.get("cost") or 0.0) / answered if answered else 0.0
    shares, calls, costs = [], [], []
    made = avoided = 0
    for bucket in stats.get("timeline", []):
        minute = dt.datetime.fromtimestamp(bucket["minute"], tz=dt.UTC)
        total = sum(bucket[s] for s in SOURCES) or 1
        shares += [{"time": minute, "source": s, "share": round(bucket[s] / total, 4)} for s in SOURCES]
        made += bucket["teacher"]
        avoided += bucket["memory"] + bucket["student"]
        calls += [
            {"time": minute, "series": "teacher calls", "calls": made},
            {"time": minute, "series": "teacher calls avoided", "calls": avoided},
        ]
        costs.append({"time": minute, "cost avoided": round(avoided * mean_cost, 6)})
    figures = []
    for adapter in listing["data"]:
        gate = adapter.get("gate") or {}
        figure_keys = (
            ("taught recall", "new_recall"),
            ("retention", "retention"),
            ("anchor accuracy", "anchor_accuracy"),
        )
        for label, key in figure_keys:
            if gate.get(key) is not None:
                figures.append({"version": adapter["version"], "figure": label, "value": gate[key]})
    cost = stats.get("cost_avoided")
    summary = (
        f"{stats['answers']['total']} answers: {stats['teacher_calls_avoided']} without the teacher"
        + (f", cost avoided {cost:.4f}" if cost else "")
        + f"; active adapter: {listing.get('active') or 'base'}"
    )
    return (
        pd.DataFrame(shares, columns=["time", "source", "share"]),
        pd.DataFrame(calls, columns=["time", "series", "calls"]),
        pd.DataFrame(costs, columns=["time", "cost avoided"]),
        pd.DataFrame(figures, columns=["version", "figure", "value"]),
        summary,
    )


# -- the app -------------------------------------------------------------------------------------------------


def theme() -> gr.themes.Base:
    """System fonts: with no analytics either, the UI asks nothing of the internet (on-prem, closed networks)."""
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch(client: MenteeClient, **options: Any) -> gr.Blocks:
    """Build the UI for ``client`` and launch it (Gradio ``launch`` options)."""
    blocks = build_demo(client)
    blocks.launch(theme=theme(), **options)
    return blocks


def build_demo(client: MenteeClient) -> gr.Blocks:
    """The UI for the server behind ``client``."""
    bind = functools.partial
    about = _about(client)  # once: the teacher and the examples do not change while the server runs
    examples = (about or {}).get("examples") or []
    with gr.Blocks(title="mentee", analytics_enabled=False) as blocks:
        gr.Markdown(f"# mentee\nA small student that learns from its teacher. Server: `{client.url}`")
        with gr.Tab("Chat"):
            conversation = gr.State([])  # as sent to the server
            shown = gr.State([])  # as shown, with the badges
            last = gr.State({})
            gr.Markdown(orientation(about), elem_id="orientation")
            chatbot = gr.Chatbot(label="mentee", height=420, elem_id="chat")
            with gr.Row():
                question = gr.Textbox(
                    placeholder="Ask a question", show_label=False, scale=5, elem_id="question", submit_btn=True
                )
            with gr.Row():
                use_memory = gr.Checkbox(True, label="memory")
                use_teacher = gr.Checkbox(True, label="teacher")
                clear = gr.Button("New conversation", size="sm")
            with gr.Row(visible=bool(examples)):
                example_questions = gr.Dataset(
                    components=[question],
                    samples=[[e["question"]] for e in examples],
                    label="Examples: click one to ask it",
                    elem_id="examples",
                )
                paraphrases = gr.Dataset(
                    components=[question],
                    samples=[[e["paraphrase"]] for e in examples if e.get("paraphrase")],
                    label="Then its paraphrase: the memory answers",
                    elem_id="paraphrases",
                    visible=any(e.get("paraphrase") for e in examples),
                )
            with gr.Accordion("Correct the last answer (admin key)", open=False):
                corrected = gr.Textbox(label="The right answer", elem_id="correction")
                correct = gr.Button("Save the correction", elem_id="correct")
            question.submit(
                bind(respond, client),
                [question, shown, conversation, use_memory, use_teacher],
                [chatbot, shown, conversation, last, question],
                api_name="chat",
            )
            correct.click(
                bind(correct_last, client),
                [corrected, shown, conversation, last],
                [chatbot, shown, conversation, last, corrected],
                api_name="correct",
            )
            for dataset, name in ((example_questions, "ask_example"), (paraphrases, "ask_paraphrase")):
                dataset.click(
                    bind(ask_example, client),
                    [dataset, shown, use_memory, use_teacher],
                    [chatbot, shown, conversation, last, question],
                    api_name=name,
                )
            clear.click(reset_chat, None, [chatbot, shown, conversation, last])
        with gr.Tab("Memory"):
            with gr.Row():
                query = gr.Textbox(label="Search (by meaning)", scale=3)
                source = gr.Textbox(label="Source", placeholder="e.g. person:ui", scale=1)
                trust = gr.Dropdown(["any", "teacher", "human"], value="any", label="Trust", scale=1)
                learned = gr.Dropdown(["any", "learned", "not learned"], value="any", label="Learned", scale=1)
            search = gr.Button("Search")
            items = gr.Dataframe(headers=MEMORY_COLUMNS, interactive=False, wrap=True, elem_id="memory-table")
            with gr.Row():
                item_id = gr.Textbox(label="Item", interactive=False)
                item_question = gr.Textbox(label="Question", interactive=False)
                item_answer = gr.Textbox(label="Answer (editable)")
            with gr.Row():
                save = gr.Button("Save answer")
                delete = gr.Button("Delete item", variant="stop")
            memory_status = gr.Markdown()
            filters = [query, source, trust, learned]
            search.click(bind(search_memory, client), filters, items, api_name="search_memory")
            query.submit(bind(search_memory, client), filters, items)
            items.select(pick_item, items, [item_id, item_question, item_answer])
            save.click(bind(save_item, client), [item_id, item_answer], memory_status).then(
                bind(search_memory, client), filters, items
            )
            delete.click(bind(delete_item, client), item_id, memory_status).then(
                bind(search_memory, client), filters, items
            )
        with gr.Tab("Learning"):
            job_id = gr.State("")
            start = gr.Button("Start a learning round", variant="primary")
            progress = gr.HTML(progress_html(None), elem_id="round-progress")
            adapters = gr.Dataframe(headers=ADAPTER_COLUMNS, interactive=False, label="Adapters")
            with gr.Row():
                version = gr.Dropdown(["base"], value="base", label="Serve this version", allow_custom_value=False)
                switch = gr.Button("Activate")
                refresh = gr.Button("Refresh")
            switch_status = gr.Markdown()
            poll = gr.Timer(2.0)
            start.click(bind(start_round, client), None, [job_id, progress], api_name="start_round").then(
                bind(adapters_table, client), None, [adapters, version]
            )
            poll.tick(bind(round_status, client), job_id, progress, api_name="round_status")
            refresh.click(bind(adapters_table, client), None, [adapters, version], api_name="adapters")
            switch.click(bind(activate, client), version, switch_status).then(
                bind(adapters_table, client), None, [adapters, version]
            )
        with gr.Tab("Watch it learn"):
            gr.Markdown(
                "A guided run in its own memory (yours is untouched; needs the admin key): the student alone is asked "
                "the examples, then the teacher answers them, the memory answers their paraphrases, a learning "
                "round folds them into the student, and the student alone is asked again. Minutes on a CPU."
            )
            guided = gr.Button("Watch it learn", variant="primary", elem_id="guided-start")
            guided_bar = gr.HTML(progress_html(None), elem_id="guided-progress")
            guided_table = gr.Dataframe(interactive=False, wrap=True, label="Before and after", elem_id="guided-table")
            guided_log = gr.Markdown(elem_id="guided-log")
        with gr.Tab("Dashboard"):
            summary = gr.Markdown(elem_id="dashboard-summary")
            shares = gr.LinePlot(x="time", y="share", color="source", title="Share of answers by source, per minute")
            calls = gr.LinePlot(x="time", y="calls", color="series", title="Teacher calls made and avoided")
            costs = gr.LinePlot(x="time", y="cost avoided", title="Cost avoided (teacher prices in the config)")
            figures = gr.BarPlot(x="version", y="value", color="figure", title="Per adapter: taught recall, anchors")
            update = gr.Button("Refresh", elem_id="dashboard-refresh")
            update.click(bind(dashboard, client), None, [shares, calls, costs, figures, summary], api_name="dashboard")
        guided.click(
            bind(guided_run, client), None, [guided_log, guided_bar, guided_table], api_name="guided_run"
        ).then(bind(dashboard_or_nothing, client), None, [shares, calls, costs, figures, summary])
        blocks.load(bind(dashboard_or_nothing, client), None, [shares, calls, costs, figures, summary])
    return blocks


def dashboard_or_nothing(client: MenteeClient) -> tuple[Any, Any, Any, Any, str]:
    """The dashboard on page load; without the admin key (or the server) a note instead of an error."""
    try:
        return dashboard(client)
    except gr.Error as e:
        empty = pd.DataFrame()
        return empty, empty, empty, empty, f"The dashboard needs the admin key and the server: {e}"


demo = build_demo(client_from_env())
