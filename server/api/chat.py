"""The chat routes: ``POST /v1/chat/completions`` (streamed or not) for the routed model, and ``/v1/models``.

The response carries a top-level ``mentee`` object (source, confidence, threshold, adapter, memory_id, …), on the
final chunk when streaming. The request may carry ``mentee: {memory, teacher, learn}`` (``extra_body`` in OpenAI
clients) to switch sources off. A streamed answer opens at once, but its text comes only once routed completely:
the confidence gate needs the student's whole answer, and what is shown must be the answer that passed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core.errors import InvalidRequestError, MenteeError
from ..serving.router import NoSourceError, RoutedAnswer, Switches
from .protocol import ApiError, ChatCompletionRequest, completion, conversation, usage

if TYPE_CHECKING:
    from ..service import Mentee
    from .metrics import Metrics

logger = logging.getLogger(__name__)


def chat_routes(
    mentee: Mentee, metrics: Metrics, chat_auth: Callable[..., None], admin_auth: Callable[..., None]
) -> APIRouter:
    """The chat routes over a started mentee, behind the chat key (a guided-run turn behind the admin key)."""
    settings = mentee.settings
    model_name = settings.api_model_name
    routes = APIRouter(dependencies=[Depends(chat_auth)])

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": int(mentee.started_at), "owned_by": "mentee"}

    def require_model(name: str) -> None:
        if name != model_name:
            msg = f"model {name!r} not found; this server serves {model_name!r}"
            raise ApiError(404, msg, code="model_not_found")

    @routes.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @routes.get("/v1/models/{name}")
    async def get_model(name: str) -> dict[str, Any]:
        require_model(name)
        return model_card()

    @routes.get("/v1/mentee/about")
    async def about() -> dict[str, Any]:
        """The teacher connected, the student, the threshold and example questions (what the chat shows first)."""
        return mentee.about()

    @routes.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        require_model(body.model)
        if body.n != 1:
            raise ApiError(400, "n must be 1: mentee gives one answer per request", code="unsupported_n")
        if (refused := body.unsupported()) is not None:
            raise ApiError(400, refused, code="unsupported_parameter")
        turns = conversation(
            body.messages,
            max_messages=settings.api_max_messages,
            max_chars=settings.api_max_message_chars,
            max_question_chars=settings.question_max_chars,
        )
        switches = Switches(**body.mentee.model_dump()) if body.mentee is not None else Switches()
        if switches.guided:
            admin_auth(request)  # the guided run's memory feeds rounds: not for every chat key

        async def route() -> RoutedAnswer:
            started = time.monotonic()
            try:
                routed = await run_in_threadpool(mentee.answer, turns, switches)
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
            return stream_response(completion_id, model_name, route, include_usage=include_usage)
        return JSONResponse(completion(completion_id, model_name, await route()))

    return routes


def _pieces(text: str) -> list[str]:
    """The answer in word-sized pieces (spaces kept), as a streamed answer arrives."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return [p for p in pieces if p]


def stream_response(
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
            final["usage"] = usage(routed)
        yield {"data": chunk({}, "stop", **final)}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)
