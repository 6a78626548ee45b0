"""``/api/v1/runs``: start, list, inspect, cancel; task logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.deps import engine
from treadle.api.v1.control import layer_view
from treadle.api.views import event_view, parse_etag, run_summary, run_view
from treadle.engine.service import EngineService
from treadle.model.states import TaskStatus

router = APIRouter(prefix="/api/v1", tags=["runs"])


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: str | dict[str, Any] = Field(
        description="A stored definition's name, or an inline native definition"
    )
    version: int | None = Field(default=None, ge=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    paused: bool = Field(default=False, description="Create the run paused (unpause starts it)")


async def full_run(service: EngineService, run_id: str) -> dict[str, Any]:
    run = await service.get_run(run_id)
    tasks = await service.get_tasks(run_id)
    attempts = await service.get_attempts(run_id)
    view = run_view(run, tasks, attempts)
    view["layers"] = [layer_view(layer) for layer in await service.store.get_layers(run_id)]
    return view


@router.post("/runs", status_code=201, summary="Start a run")
async def create_run(body: RunRequest, service: EngineService = Depends(engine)) -> JSONResponse:
    run = await service.start_run(
        body.definition,
        body.inputs,
        version=body.version,
        labels=body.labels,
        paused=body.paused,
    )
    return JSONResponse(await full_run(service, run.id), status_code=201)


@router.get("/runs", summary="List runs, newest first")
async def list_runs(
    status: str | None = Query(default=None),
    definition: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=1000),
    cursor: str | None = Query(default=None),
    created_after: datetime | None = Query(default=None),
    created_before: datetime | None = Query(default=None),
    id_prefix: str | None = Query(default=None, alias="id"),
    service: EngineService = Depends(engine),
) -> dict[str, Any]:
    runs, next_cursor = await service.store.list_runs(
        status=status,
        definition=definition,
        limit=limit,
        cursor=cursor,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
    )
    return {"items": [run_summary(r) for r in runs], "next_cursor": next_cursor}


@router.get("/runs/{run_id}", summary="A run with every task, attempt, output and error")
async def get_run(run_id: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return await full_run(service, run_id)


@router.get("/runs/{run_id}/events", summary="The run's event history")
async def run_events(run_id: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return {"items": [event_view(e) for e in await service.list_events(run_id)]}


@router.post("/runs/{run_id}/cancel", summary="Cancel a run")
async def cancel_run(
    run_id: str,
    if_match: str | None = Header(default=None),
    service: EngineService = Depends(engine),
) -> dict[str, Any]:
    await service.cancel_run(run_id, "api", parse_etag(if_match))
    return await full_run(service, run_id)


@router.get(
    "/runs/{run_id}/tasks/{name}/logs",
    summary="A task's log text",
    response_class=PlainTextResponse,
)
async def task_logs(
    run_id: str,
    name: str,
    follow: bool = Query(default=False, description="Stream until the task finishes"),
    after: int = Query(default=0, ge=0, description="Only chunks after this id"),
    service: EngineService = Depends(engine),
) -> Any:
    task = await service.task_by_name(run_id, name)
    if not follow:
        chunks = await service.read_logs(task.id, after)
        text = "".join(c.text for c in chunks)
        last = chunks[-1].id if chunks else after
        return PlainTextResponse(text, headers={"X-Treadle-Log-Cursor": str(last)})
    return StreamingResponse(_follow(service, task.id, after), media_type="text/plain")


async def _follow(service: EngineService, task_id: str, after: int) -> AsyncIterator[str]:
    cursor = after
    while True:
        chunks = await service.read_logs(task_id, cursor)
        for chunk in chunks:
            cursor = chunk.id
            yield chunk.text
        if chunks:
            continue
        task = await service.store.get_task(task_id)
        if TaskStatus(task.status).terminal:
            # One more read: the last lines may have landed with the outcome.
            for chunk in await service.read_logs(task_id, cursor):
                yield chunk.text
            return
        await asyncio.sleep(0.25)
