"""The OpenAI-compatible API: any OpenAI client, LangChain and the UI talk to mentee through it.

:func:`create_app` puts together the keys (``api_key`` for chat routes, ``admin_key`` for admin routes: 401
without a key, 403 with the wrong one), the body-size limit, errors in OpenAI's shape, ``/health`` and
``/metrics`` (Prometheus), the chat routes (:mod:`.chat`) and the admin routes (:mod:`.admin`). Whatever a part
below rejects as bad input is a 400; any other :class:`~mentee.server.core.errors.MenteeError` (the memory's
Chroma or the student's vLLM failing) is a 503 with the reason, on every route.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import InvalidRequestError, MenteeError
from .admin import admin_routes
from .chat import chat_routes
from .metrics import Metrics
from .protocol import ApiError, error_response

if TYPE_CHECKING:
    from ..service import Mentee

logger = logging.getLogger(__name__)

_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


def create_app(mentee: Mentee) -> FastAPI:
    """The API over a started :class:`~mentee.server.service.Mentee` (which the caller closes)."""
    settings = mentee.settings
    metrics = Metrics(mentee)
    app = FastAPI(
        title="mentee",
        summary="A small student LLM that learns live from a teacher LLM (OpenAI-compatible).",
        version=_version(),
    )
    app.state.mentee = mentee
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None

    def chat_auth(request: Request) -> None:
        if api_key is None and admin_key is None:
            return
        given = _bearer(request)
        if given is None:
            raise ApiError(401, "missing API key (Authorization: Bearer ...)", "authentication_error", "missing_key")
        if not any(k is not None and _same_key(given, k) for k in (api_key, admin_key)):
            raise ApiError(401, "invalid API key", "authentication_error", "invalid_api_key")

    def admin_auth(request: Request) -> None:
        if admin_key is None:
            if api_key is None:
                return  # loopback without keys: everything is open to the one local user
            raise ApiError(403, "admin routes are off: set MENTEE_ADMIN_KEY", "permission_error", "admin_disabled")
        given = _bearer(request)
        if given is None:
            raise ApiError(401, "missing admin key (Authorization: Bearer ...)", "authentication_error", "missing_key")
        if not _same_key(given, admin_key):
            raise ApiError(403, "this key may not use admin routes", "permission_error", "not_admin")

    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(InvalidRequestError)
    async def on_invalid_request(request: Request, error: InvalidRequestError) -> JSONResponse:
        # Whatever a part below rejects as bad input (a NUL in a search text, a malformed id) is the caller's 400.
        return error_response(ApiError(400, str(error)))

    @app.exception_handler(MenteeError)
    async def on_mentee_error(request: Request, error: MenteeError) -> JSONResponse:
        # A part below failed (the memory's Chroma, the student's vLLM): the service is unavailable, and says why.
        logger.warning("%s %s failed: %s", request.method, request.url.path, error)
        return error_response(ApiError(503, str(error), "service_unavailable", "unavailable"))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'] if p != 'body') or 'body'}: {item['msg']}"
            for item in error.errors()
        )
        return error_response(ApiError(422, f"invalid request: {problems}", code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 400 and message == _FASTAPI_PARSE_ERROR:
            # FastAPI says only this when json.loads gave up, which valid-looking bodies reach by nesting.
            message = "the request body could not be parsed as JSON (malformed, or nested too deeply)"
        code = "body_too_large" if error.status_code == 413 else "http_error"
        return error_response(ApiError(error.status_code, message, code=code))

    @app.get("/health")
    async def health() -> JSONResponse:
        problems = await run_in_threadpool(_health_problems, mentee)
        body = {"status": "ok" if not problems else "degraded", "problems": problems, "model": settings.api_model_name}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, media_type=content_type)

    app.include_router(chat_routes(mentee, metrics, chat_auth, admin_auth))
    app.include_router(admin_routes(mentee, admin_auth))
    return app


class BodyLimit:
    """At most ``max_bytes`` of request body, however it is framed: a ``Content-Length`` over the limit is refused
    before anything is read, and a chunked body stops being read once it passes the limit (before, only the
    header was checked, so 30 MB sent chunked were read and parsed in full). A pure ASGI middleware, since it
    must count the body as it arrives."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is over {self.max_bytes} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await error_response(ApiError(413, too_large, code="body_too_large"))(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body on to the app's handler.
                    raise StarletteHTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mentee")
    except PackageNotFoundError:
        return "0"


def _same_key(given: str, key: str) -> bool:
    """Constant-time comparison of bytes: compare_digest refuses non-ASCII text (a 500 before), so whatever a
    client sends is a 401 when it is not the key. Headers arrive decoded as latin-1: encoding back gives the bytes
    sent, which a UTF-8 key is compared with."""
    return secrets.compare_digest(given.encode("latin-1", "replace"), key.encode("utf-8"))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


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
