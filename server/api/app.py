"""The OpenAI-compatible API: any OpenAI client, LangChain and the UI talk to mentee through it.

Routes:

- ``POST /v1/chat/completions`` (streaming and not) for the routed model (``api_model_name``, ``mentee`` by
  default). The response carries a top-level ``mentee`` object (source, confidence, threshold, adapter,
  memory_id, …), on the final chunk when streaming. The request may carry ``mentee: {memory, teacher, learn}``
  (``extra_body`` in OpenAI clients) to switch sources off.
- ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus).
- Admin, under ``/v1/mentee/``: the memory (search, list, get, correct, delete), stats, calibration state.

Keys: ``api_key`` for chat routes, ``admin_key`` for admin routes (401 without a key, 403 with the wrong one).
A streamed answer opens at once, but its text comes only once routed completely: the confidence gate needs the
student's whole answer, and what is shown must be the answer that passed it. A failure on the way ends the stream
with an error event (OpenAI's shape).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import InvalidRequestError, MenteeError
from ..serving.router import NoSourceError, RoutedAnswer, Switches
from ..student.prompting import ChatMessage

if TYPE_CHECKING:
    from ..service import Mentee

logger = logging.getLogger(__name__)

_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


# -- request schema ------------------------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, … are accepted and ignored

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class MenteeSwitchesIn(BaseModel):
    """Which sources this request may use (all by default)."""

    model_config = ConfigDict(extra="forbid")

    memory: bool = Field(default=True, description="Let the memory answer.")
    teacher: bool = Field(default=True, description="Let the teacher answer.")
    learn: bool = Field(default=True, description="Remember the teacher's answer.")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. Sampling options are accepted but mentee answers greedily with its own
    token limit: the confidence gate is calibrated on greedy answers."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    mentee: MenteeSwitchesIn | None = None


class CorrectionIn(BaseModel):
    """A person's answer to remember (it outranks any teacher's)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=20000)
    by: str = Field(default="admin", min_length=1, max_length=100, description="Who corrected it.")


class AnswerCorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=20000)
    by: str = Field(default="admin", min_length=1, max_length=100)


# -- the app -------------------------------------------------------------------------------------------------


def create_app(mentee: Mentee) -> FastAPI:
    """The API over a started :class:`~mentee.server.service.Mentee` (which the caller closes)."""
    settings = mentee.settings
    metrics = _Metrics(mentee)
    app = FastAPI(
        title="mentee",
        summary="A small student LLM that learns live from a teacher LLM (OpenAI-compatible).",
        version=_version(),
    )
    app.state.mentee = mentee
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    model_name = settings.api_model_name

    def chat_auth(request: Request) -> None:
        if api_key is None and admin_key is None:
            return
        given = _bearer(request)
        if given is None:
            raise ApiError(401, "missing API key (Authorization: Bearer ...)", "authentication_error", "missing_key")
        if not any(k is not None and secrets.compare_digest(given, k) for k in (api_key, admin_key)):
            raise ApiError(401, "invalid API key", "authentication_error", "invalid_api_key")

    def admin_auth(request: Request) -> None:
        if admin_key is None:
            if api_key is None:
                return  # loopback without keys: everything is open to the one local user
            raise ApiError(403, "admin routes are off: set MENTEE_ADMIN_KEY", "permission_error", "admin_disabled")
        given = _bearer(request)
        if given is None:
            raise ApiError(401, "missing admin key (Authorization: Bearer ...)", "authentication_error", "missing_key")
        if not secrets.compare_digest(given, admin_key):
            raise ApiError(403, "this key may not use admin routes", "permission_error", "not_admin")

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.api_max_body_bytes):
            return _error_response(
                ApiError(413, f"the request body is over {settings.api_max_body_bytes} bytes", code="body_too_large")
            )
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(InvalidRequestError)
    async def on_invalid_request(request: Request, error: InvalidRequestError) -> JSONResponse:
        # Whatever a part below rejects as bad input (a NUL in a search text, a malformed id) is the caller's 400.
        return _error_response(ApiError(400, str(error)))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'] if p != 'body') or 'body'}: {item['msg']}"
            for item in error.errors()
        )
        return _error_response(ApiError(422, f"invalid request: {problems}", code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 400 and message == _FASTAPI_PARSE_ERROR:
            # FastAPI says only this when json.loads gave up, which valid-looking bodies reach by nesting.
            message = "the request body could not be parsed as JSON (malformed, or nested too deeply)"
        return _error_response(ApiError(error.status_code, message, code="http_error"))

    @app.get("/health")
    async def health() -> JSONResponse:
        problems = await run_in_threadpool(_health_problems, mentee)
        body = {"status": "ok" if not problems else "degraded", "problems": problems, "model": model_name}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, media_type=content_type)

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": int(mentee.started_at), "owned_by": "mentee"}

    def require_model(name: str) -> None:
        if name != model_name:
            msg = f"model {name!r} not found; this server serves {model_name!r}"
            raise ApiError(404, msg, code="model_not_found")

    @app.get("/v1/models", dependencies=[Depends(chat_auth)])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name}", dependencies=[Depends(chat_auth)])
    async def get_model(name: str) -> dict[str, Any]:
        require_model(name)
        return model_card()

    @app.post("/v1/chat/completions", dependencies=[Depends(chat_auth)], response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        require_model(body.model)
        if body.n != 1:
            raise ApiError(400, "n must be 1: mentee gives one answer per request", code="unsupported_n")
        conversation = _conversation(body.messages, settings.api_max_messages, settings.api_max_message_chars)
        switches = Switches(**body.mentee.model_dump()) if body.mentee is not None else Switches()

        async def route() -> RoutedAnswer:
            started = time.monotonic()
            try:
                routed = await run_in_threadpool(mentee.answer, conversation, switches)
            except InvalidRequestError as e:
                metrics.failed("invalid")
                raise ApiError(400, str(e)) from e
            except NoSourceError as e:
                metrics.failed("no_source")
                raise ApiError(503, f"no source could answer: {e}", "service_unavailable", "no_source") from e
            except MenteeError as e:
                metrics.failed("unavailable")
                logger.warning("a request failed: %s", e)
                raise ApiError(503, str(e), "service_unavailable", "unavailable") from e
            metrics.answered(routed, time.monotonic() - started)
            return routed

        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return _stream_response(completion_id, model_name, route, include_usage=include_usage)
        return JSONResponse(_completion(completion_id, model_name, await route()))

    # -- admin ---------------------------------------------------------------------------------------------

    admin = [Depends(admin_auth)]
    memory_required = _memory_of(mentee)

    @app.get("/v1/mentee/stats", dependencies=admin)
    async def stats() -> dict[str, Any]:
        return await run_in_threadpool(mentee.stats)

    @app.get("/v1/mentee/calibration", dependencies=admin)
    async def calibration() -> dict[str, Any]:
        return mentee.calibration_state()

    @app.post("/v1/mentee/train", dependencies=admin, status_code=202)
    async def train() -> dict[str, Any]:
        from ..learning.round import LearningError

        try:
            job = mentee.rounds.submit("asked through the API")
        except LearningError as e:
            raise ApiError(409, str(e), code="round_running") from e
        except MenteeError as e:
            raise ApiError(503, str(e), "service_unavailable", "learning_unavailable") from e
        return job.to_dict()

    @app.get("/v1/mentee/train/{job_id}", dependencies=admin)
    async def train_status(job_id: str) -> dict[str, Any]:
        job = mentee.rounds.get(job_id) if mentee.adapters is not None else None
        if job is None:
            raise ApiError(404, f"no learning round {job_id!r}", code="not_found")
        return job.to_dict()

    @app.get("/v1/mentee/adapters", dependencies=admin)
    async def adapters() -> dict[str, Any]:
        store = mentee.adapters
        if store is None:
            return {"active": None, "data": [], "history": []}
        versions = await run_in_threadpool(store.versions)
        active = await run_in_threadpool(store.active)
        return {
            "active": active.version if active is not None else None,
            "data": [{"version": v.version, "verdict": v.verdict, **v.manifest} for v in versions],
            "history": store.history(),
        }

    @app.post("/v1/mentee/adapters/{version}/activate", dependencies=admin)
    async def activate(version: str) -> dict[str, Any]:
        from ..learning.adapters import AdapterError, AdapterNotFoundError

        try:
            chosen = await run_in_threadpool(
                lambda: mentee.learner.activate(None if version == "base" else version, reason="activated by an admin")
            )
        except InvalidRequestError as e:
            raise ApiError(400, str(e)) from e
        except AdapterNotFoundError as e:
            raise ApiError(404, str(e), code="not_found") from e
        except AdapterError as e:
            raise ApiError(409, str(e), code="not_servable") from e
        except MenteeError as e:
            raise ApiError(503, str(e), "service_unavailable", "learning_unavailable") from e
        return {"active": chosen.version if chosen is not None else None}

    @app.get("/v1/mentee/memory", dependencies=admin)
    async def memory_list(
        q: Annotated[str | None, Query(max_length=2000, description="Search text: nearest items first.")] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        trust: Annotated[Literal["teacher", "human"] | None, Query()] = None,
        learned: Annotated[bool | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        memory = memory_required()
        if q is not None:
            if not q.strip():
                raise ApiError(400, "the search text q is empty")
            hits = await run_in_threadpool(memory.search, q, k=limit)
            return {"object": "list", "data": [{**h.record.to_dict(), "distance": round(h.distance, 4)} for h in hits]}
        records = await run_in_threadpool(
            lambda: memory.list(source=source, trust=trust, learned=learned, limit=limit, offset=offset)
        )
        return {"object": "list", "data": [r.to_dict() for r in records]}

    @app.get("/v1/mentee/memory/{record_id}", dependencies=admin)
    async def memory_get(record_id: str) -> dict[str, Any]:
        record = await run_in_threadpool(memory_required().get, record_id)
        if record is None:
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found")
        return record.to_dict()

    @app.post("/v1/mentee/memory", dependencies=admin, status_code=201)
    async def memory_correct(body: CorrectionIn) -> dict[str, Any]:
        memory = memory_required()
        try:
            record = await run_in_threadpool(
                lambda: memory.remember(body.question, body.answer, source=f"person:{body.by}", trust="human")
            )
        except InvalidRequestError as e:
            raise ApiError(400, str(e)) from e
        return record.to_dict()

    @app.patch("/v1/mentee/memory/{record_id}", dependencies=admin)
    async def memory_correct_answer(record_id: str, body: AnswerCorrectionIn) -> dict[str, Any]:
        from ...memory.store import RecordNotFoundError

        memory = memory_required()
        try:
            record = await run_in_threadpool(
                lambda: memory.update(record_id, answer=body.answer, source=f"person:{body.by}", trust="human")
            )
        except RecordNotFoundError as e:
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found") from e
        except InvalidRequestError as e:
            raise ApiError(400, str(e)) from e
        return record.to_dict()

    @app.delete("/v1/mentee/memory/{record_id}", dependencies=admin, status_code=204)
    async def memory_delete(record_id: str) -> Response:
        if not await run_in_threadpool(memory_required().delete, record_id):
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found")
        return Response(status_code=204)

    return app


# -- helpers -------------------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mentee")
    except PackageNotFoundError:
        return "0"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _error_response(error: ApiError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.kind, "code": error.code, "param": None}}
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(body, status_code=error.status, headers=headers)


def _memory_of(mentee: Mentee) -> Callable[[], Any]:
    def memory_required() -> Any:
        if mentee.memory is None:
            raise ApiError(404, "this server runs without a memory", code="no_memory")
        return mentee.memory

    return memory_required


def _conversation(messages: list[MessageIn], max_messages: int, max_chars: int) -> list[ChatMessage]:
    if len(messages) > max_messages:
        raise ApiError(413, f"{len(messages)} messages; the limit is {max_messages}", code="too_many_messages")
    conversation = []
    for number, message in enumerate(messages):
        text = message.text()
        if len(text) > max_chars:
            msg = f"message {number} is {len(text)} characters long; the limit is {max_chars}"
            raise ApiError(413, msg, code="message_too_long")
        if not _is_unicode(text):
            msg = f"message {number} is not valid Unicode (it holds a lone surrogate escape such as \\ud800)"
            raise ApiError(400, msg, code="invalid_text")
        role = "system" if message.role == "developer" else message.role
        conversation.append(ChatMessage(role, text))
    if conversation[-1].role != "user":
        raise ApiError(400, "the last message must be the user's question", code="last_message_not_user")
    if not conversation[-1].content.strip():
        raise ApiError(400, "the question (the last user message) is empty", code="empty_question")
    return conversation


def _is_unicode(text: str) -> bool:
    # JSON may escape lone surrogates ("\\ud800"), which no tokenizer, embedder or store can encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _usage(routed: RoutedAnswer) -> dict[str, int]:
    return {
        "prompt_tokens": routed.tokens_in,
        "completion_tokens": routed.tokens_out,
        "total_tokens": routed.tokens_in + routed.tokens_out,
    }


def _completion(completion_id: str, model: str, routed: RoutedAnswer) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": routed.text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(routed),
        "mentee": routed.info(),
    }


def _pieces(text: str) -> list[str]:
    """The answer in word-sized pieces (spaces kept), as a streamed answer arrives."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return [p for p in pieces if p]


def _stream_response(
    completion_id: str, model: str, route: Callable[[], Awaitable[RoutedAnswer]], *, include_usage: bool
) -> Response:
    """The stream opens at once (its first chunk names the assistant; pings keep it open while a teacher is
    asked); the answer follows once routed. A failure on the way (the student's vLLM died, no source could
    answer) ends the stream with an error event in OpenAI's shape, which OpenAI clients raise as an APIError."""
    from sse_starlette import EventSourceResponse

    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        return json.dumps(body, ensure_ascii=False)

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"data": chunk({"role": "assistant", "content": ""})}
        try:
            routed = await route()
        except ApiError as e:
            error = {"message": e.message, "type": e.kind, "code": e.code, "param": None, "status": e.status}
            yield {"data": json.dumps({"error": error}, ensure_ascii=False)}
            yield {"data": "[DONE]"}
            return
        for piece in _pieces(routed.text):
            yield {"data": chunk({"content": piece})}
            await asyncio.sleep(0)
        final = {"mentee": routed.info()}
        if include_usage:
            final["usage"] = _usage(routed)
        yield {"data": chunk({}, "stop", **final)}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)


def _health_problems(mentee: Mentee) -> list[str]:
    problems = []
    student = mentee.student
    server = getattr(student, "server", None)
    if server is not None and not server.ready:
        restarting = getattr(student, "serving", False)
        problems.append(f"the student's vLLM server is {'restarting' if restarting else 'not running'}")
    if mentee.memory is not None:
        try:
            mentee.memory.count()
        except MenteeError as e:
            problems.append(f"the memory is unavailable: {e}")
    return problems


class _Metrics:
    """Prometheus metrics in the app's own registry (no process-wide globals)."""

    def __init__(self, mentee: Mentee) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.mentee = mentee
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mentee_answers", "Answers by source.", ["source", "low_confidence"], registry=self.registry
        )
        self.failures = Counter(
            "mentee_failed_requests", "Chat requests that got no answer.", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "mentee_answer_seconds",
            "Time to answer a chat request, by source.",
            ["source"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(mentee))

    def answered(self, routed: RoutedAnswer, seconds: float) -> None:
        self.requests.labels(routed.source, str(routed.low_confidence).lower()).inc()
        self.latency.labels(routed.source).observe(seconds)

    def failed(self, reason: str) -> None:
        self.failures.labels(reason).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    """Teacher ledger and memory size, read when Prometheus scrapes."""

    def __init__(self, mentee: Mentee) -> None:
        self.mentee = mentee

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        teacher = self.mentee.guarded_teacher
        if teacher is not None:
            totals = teacher.ledger.totals()
            calls = CounterMetricFamily("mentee_teacher_calls", "Teacher calls by outcome.", labels=["outcome"])
            calls.add_metric(["answer"], totals["calls"] - totals["errors"] - totals["unusable"])
            calls.add_metric(["unusable"], totals["unusable"])
            calls.add_metric(["error"], totals["errors"])
            yield calls
            tokens = CounterMetricFamily("mentee_teacher_tokens", "Teacher tokens.", labels=["direction"])
            tokens.add_metric(["in"], totals["tokens_in"])
            tokens.add_metric(["out"], totals["tokens_out"])
            yield tokens
            yield CounterMetricFamily("mentee_teacher_cost", "Teacher cost (config prices).", value=totals["cost"])
        if self.mentee.memory is not None:
            try:
                size = self.mentee.memory.count()
            except MenteeError:
                size = None  # /health says why
            if size is not None:
                yield GaugeMetricFamily("mentee_memory_items", "Remembered items (this namespace).", value=size)
        threshold = self.mentee.threshold
        yield GaugeMetricFamily("mentee_confidence_threshold", "The student's confidence threshold.", value=threshold)
