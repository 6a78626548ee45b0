"""Flower's HTTP API over the engine, plus the flow views and rerun Flower lacked.

- ``POST /register/{task_id}``: start a flow of the workflow ``task_id`` ->
  ``{"status": "succeeded", "taskId": ..., "taskFlowId": ...}``; 404 for an unknown workflow.
- ``GET /flower/flows/{task_flow_id}``: the flow as ``kr_task_stat`` rows.
- ``POST /flower/flows/{task_flow_id}/rerun?from=N``: run the flow again from task_exec_seq N.

The router's lifespan admits waiting flows (flow control) and, on PostgreSQL stores, creates the
``kr_task_stat`` view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

import treadle.compat.flower.programs  # noqa: F401  (registers the built-in programs)
from treadle.compat.flower.flowcontrol import DEFAULT_MAX_FLOWS, admission_loop, register_flow
from treadle.compat.flower.pgviews import create_flower_views
from treadle.compat.flower.views import flow_rows
from treadle.compat.rerun import rerun_from
from treadle.engine.service import EngineService
from treadle.errors import NotFound, ServiceUnavailable

log = logging.getLogger(__name__)


def max_flows(app: FastAPI) -> int:
    """The flow-control limit from the settings (0: no limit)."""
    settings = getattr(app.state, "settings", None)
    return int(getattr(settings, "flower_max_flows", DEFAULT_MAX_FLOWS))


async def _create_views(service: EngineService) -> None:
    engine = getattr(service.store, "engine", None)
    if engine is None or getattr(engine.dialect, "name", "") != "postgresql":
        return
    try:
        async with engine.begin() as conn:
            await create_flower_views(conn)
    except Exception as exc:  # a read-only role may not create views; the API still works
        log.warning("could not create the kr_task_stat view: %s", exc)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: EngineService | None = getattr(app.state, "engine", None)
    loop_task: asyncio.Task[None] | None = None
    if service is not None:
        await _create_views(service)
        limit = max_flows(app)
        if limit > 0:
            loop_task = asyncio.create_task(admission_loop(service, limit), name="flower-admit")
    try:
        yield
    finally:
        if loop_task is not None:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task


router = APIRouter(tags=["flower"], lifespan=_lifespan)


def _engine(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service


@router.post("/register/{task_id}", summary="Flower: start a flow of a workflow")
@router.post("/register/{task_id}/", include_in_schema=False)
async def register(task_id: str, request: Request) -> JSONResponse:
    service = _engine(request)
    try:
        run = await register_flow(service, task_id, max_flows(request.app))
    except NotFound:
        return JSONResponse(
            {
                "status": "failed",
                "taskId": task_id,
                "error": f"no workflow {task_id!r} is registered (import its "
                "ms_task_definition rows first)",
            },
            status_code=404,
        )
    return JSONResponse({"status": "succeeded", "taskId": task_id, "taskFlowId": run.id})


@router.get("/flower/flows/{task_flow_id}", summary="Flower: a flow as kr_task_stat rows")
async def get_flow(task_flow_id: str, request: Request) -> list[dict[str, Any]]:
    service = _engine(request)
    run = await service.get_run(task_flow_id)
    return flow_rows(run, await service.get_tasks(run.id))


@router.post(
    "/flower/flows/{task_flow_id}/rerun", summary="Flower: rerun a flow from a task_exec_seq"
)
async def rerun(
    task_flow_id: str,
    request: Request,
    from_seq: int = Query(default=1, alias="from", ge=1, description="task_exec_seq"),
) -> list[dict[str, Any]]:
    service = _engine(request)
    run = await rerun_from(service, task_flow_id, from_seq - 1, actor="flower")
    return flow_rows(run, await service.get_tasks(run.id))
