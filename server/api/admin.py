"""The admin routes, under ``/v1/mentee/``: stats, calibration, learning rounds, adapters, and the memory (search,
list, get, correct, delete). A part that fails underneath (the memory's Chroma, vLLM) is a 503 with the reason,
through the app's handler for :class:`~mentee.server.core.errors.MenteeError`, as on the chat route."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..core.errors import InvalidRequestError, MenteeError
from .protocol import AnswerCorrectionIn, ApiError, CorrectionIn, TrainRequest

if TYPE_CHECKING:
    from ...memory.store import Memory
    from ..service import Mentee


def admin_routes(mentee: Mentee, admin_auth: Callable[..., None]) -> APIRouter:
    """The admin routes over a started mentee, behind the admin key."""
    routes = APIRouter(prefix="/v1/mentee", dependencies=[Depends(admin_auth)])

    def memory_required() -> Memory:
        if mentee.memory is None:
            raise ApiError(404, "this server runs without a memory", code="no_memory")
        return mentee.memory

    @routes.get("/stats")
    async def stats() -> dict[str, Any]:
        return await run_in_threadpool(mentee.stats)

    @routes.get("/calibration")
    async def calibration() -> dict[str, Any]:
        return mentee.calibration_state()

    @routes.post("/train", status_code=202)
    async def train(body: TrainRequest | None = None) -> dict[str, Any]:
        from ..learning.round import LearningError

        guided = body is not None and body.guided
        try:
            job = mentee.rounds.submit("the guided run" if guided else "asked through the API", guided=guided)
        except LearningError as e:
            # The running round's id as data (None when another process of the deployment runs it).
            raise ApiError(409, str(e), code="round_running", round_id=e.round_id) from e
        except MenteeError as e:
            if guided and mentee.adapters is not None:  # the deployment learns, but not a guided round now
                raise ApiError(409, str(e), code="guided_unavailable") from e
            raise ApiError(503, str(e), "service_unavailable", "learning_unavailable") from e
        return job.to_dict()

    @routes.delete("/guided/memory")
    async def clear_guided() -> dict[str, Any]:
        """Forget the guided run's items (its own memory; the deployment's is untouched)."""
        memory_required()
        return {"deleted": await run_in_threadpool(mentee.clear_guided)}

    @routes.get("/train/{job_id}")
    async def train_status(job_id: str) -> dict[str, Any]:
        job = mentee.rounds.get(job_id) if mentee.adapters is not None else None
        if job is None:
            raise ApiError(404, f"no learning round {job_id!r}", code="not_found")
        return job.to_dict()

    @routes.get("/adapters")
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

    @routes.post("/adapters/{version}/activate")
    async def activate(version: str) -> dict[str, Any]:
        from ..learning.adapters import AdapterError, AdapterNotFoundError

        try:
            chosen = await run_in_threadpool(
                lambda: mentee.learner.activate(None if version == "base" else version, reason="activated by an admin")
            )
        except AdapterNotFoundError as e:
            raise ApiError(404, str(e), code="not_found") from e
        except AdapterError as e:
            raise ApiError(409, str(e), code="not_servable") from e
        except InvalidRequestError:
            raise  # the app's 400
        except MenteeError as e:
            raise ApiError(503, str(e), "service_unavailable", "learning_unavailable") from e
        return {"active": chosen.version if chosen is not None else None}

    @routes.get("/memory")
    async def memory_list(
        q: Annotated[str | None, Query(description="Search text: nearest items first.")] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        trust: Annotated[Literal["teacher", "human"] | None, Query()] = None,
        learned: Annotated[bool | None, Query()] = None,
        disputed: Annotated[
            bool | None, Query(description="Only items a teacher later answered differently (disputed_by set).")
        ] = None,
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
            lambda: memory.list(
                source=source, trust=trust, learned=learned, disputed=disputed, limit=limit, offset=offset
            )
        )
        return {"object": "list", "data": [r.to_dict() for r in records]}

    @routes.get("/memory/{record_id}")
    async def memory_get(record_id: str) -> dict[str, Any]:
        record = await run_in_threadpool(memory_required().get, record_id)
        if record is None:
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found")
        return record.to_dict()

    @routes.post("/memory", status_code=201)
    async def memory_correct(body: CorrectionIn) -> dict[str, Any]:
        memory = memory_required()
        record = await run_in_threadpool(
            lambda: memory.remember(body.question, body.answer, source=f"person:{body.by}", trust="human")
        )
        return record.to_dict()

    @routes.patch("/memory/{record_id}")
    async def memory_correct_answer(record_id: str, body: AnswerCorrectionIn) -> dict[str, Any]:
        from ...memory.store import RecordNotFoundError

        memory = memory_required()
        try:
            record = await run_in_threadpool(
                lambda: memory.update(record_id, answer=body.answer, source=f"person:{body.by}", trust="human")
            )
        except RecordNotFoundError as e:
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found") from e
        return record.to_dict()

    @routes.delete("/memory/{record_id}", status_code=204)
    async def memory_delete(record_id: str) -> Response:
        if not await run_in_threadpool(memory_required().delete, record_id):
            raise ApiError(404, f"no remembered item {record_id!r}", code="not_found")
        return Response(status_code=204)

    return routes
