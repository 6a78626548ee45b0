"""Operator control: ``POST /api/v1/{runs|layers|tasks}/{id}/{op}`` and bulk ``PATCH /api/v1/{op}``.

Operations: pause, unpause, kill, retry, skip, rerun (see :mod:`treadle.engine.control`). A
single operation takes the etag the operator saw in ``If-Match``; a stale one gets 409 and
changes nothing. Layers are also read and extended here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.deps import engine
from treadle.api.views import etag, iso, parse_etag, task_view
from treadle.engine.control import OPERATIONS, Outcome
from treadle.engine.service import EngineService
from treadle.store.records import LayerRecord

router = APIRouter(prefix="/api/v1", tags=["control"])

OpPath = Path(description="pause | unpause | kill | retry | skip | rerun")
ActorHeader = Header(default=None, alias="X-Treadle-Actor", description="Who acts (for events)")


def acting(request: Request, claimed: str | None = ActorHeader) -> str:
    """Who acts, for the event history.

    With authentication on it is the token's name, which a client cannot forge; what the
    client says of itself in ``X-Treadle-Actor`` is kept beside it. Otherwise the header, or
    ``api``.
    """
    token = getattr(request.state, "token", None)
    if token is not None:
        return f"token:{token.name}" + (f" ({claimed})" if claimed else "")
    return claimed or "api"


class BulkItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="run | layer | task (Igor's Job | Layer | Task too)")
    id: str = Field(min_length=1)
    etag: str | int | None = None


def layer_view(layer: LayerRecord) -> dict[str, Any]:
    return {
        "id": layer.id,
        "run_id": layer.run_id,
        "name": layer.name,
        "priority": layer.priority,
        "status": "paused" if layer.paused and layer.status == "pending" else layer.status,
        "paused": layer.paused,
        "error": layer.error,
        "etag": etag(layer.version),
        "created_at": iso(layer.created_at),
        "started_at": iso(layer.started_at),
        "finished_at": iso(layer.finished_at),
    }


def _outcome_view(outcome: Outcome) -> JSONResponse:
    body = {
        "kind": outcome.kind,
        "id": outcome.id,
        "run_id": outcome.run_id,
        "op": outcome.op,
        "etag": etag(outcome.etag),
        "affected": outcome.affected,
    }
    return JSONResponse(body, headers={"ETag": f'"{outcome.etag}"'})


async def _single(
    service: EngineService, kind: str, target_id: str, op: str, if_match: str | None, actor: str
) -> JSONResponse:
    outcome = await service.control.apply(op, kind, target_id, parse_etag(if_match), actor)
    return _outcome_view(outcome)


@router.post("/runs/{run_id}/{op}", summary="Control a run")
async def control_run(
    run_id: str,
    op: str = OpPath,
    if_match: str | None = Header(default=None),
    actor: str = Depends(acting),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    return await _single(service, "run", run_id, op, if_match, actor)


@router.post("/layers/{layer_id}/tasks", status_code=201, summary="Add tasks to a layer")
async def add_layer_tasks(
    layer_id: str,
    body: dict[str, Any] | list[dict[str, Any]] = Body(
        description='A native task, a list of them, or {"tasks": [...]}'
    ),
    actor: str = Depends(acting),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    if isinstance(body, dict):
        specs = body["tasks"] if isinstance(body.get("tasks"), list) else [body]
    else:
        specs = body
    added = await service.add_layer_tasks(layer_id, specs, actor)
    return JSONResponse({"items": [task_view(t, []) for t in added]}, status_code=201)


@router.get("/layers/{layer_id}", summary="A layer with its tasks")
async def get_layer(layer_id: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    layer = await service.store.get_layer(layer_id)
    tasks = await service.store.get_tasks(layer.run_id)
    view = layer_view(layer)
    view["tasks"] = [task_view(t, []) for t in tasks if t.layer == layer.name]
    return view


@router.post("/layers/{layer_id}/{op}", summary="Control a layer")
async def control_layer(
    layer_id: str,
    op: str = OpPath,
    if_match: str | None = Header(default=None),
    actor: str = Depends(acting),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    return await _single(service, "layer", layer_id, op, if_match, actor)


@router.post("/tasks/{task_id}/{op}", summary="Control a task")
async def control_task(
    task_id: str,
    op: str = OpPath,
    if_match: str | None = Header(default=None),
    actor: str = Depends(acting),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    return await _single(service, "task", task_id, op, if_match, actor)


def _bulk_route(op: str) -> Any:
    async def bulk(
        items: list[BulkItem] = Body(...),
        actor: str = Depends(acting),
        service: EngineService = Depends(engine),
    ) -> dict[str, int]:
        targets = [
            (item.kind, item.id, parse_etag(str(item.etag)) if item.etag is not None else None)
            for item in items
        ]
        count = await service.control.bulk(op, targets, actor)
        return {"count": count, "updated": count}  # "updated": Igor's name for the same number

    return bulk


# One route per operation (not PATCH /{op}): any other path under /api/v1 stays a clean 404.
for _op in OPERATIONS:
    router.add_api_route(
        f"/{_op}",
        _bulk_route(_op),
        methods=["PATCH"],
        summary=f"{_op.capitalize()} many runs, layers and tasks",
        description="Items with a stale etag (or in a state the operation does not apply to) "
        "are left alone; the answer counts the ones applied.",
    )
