"""``/api/v1/schedules``: cron schedules that start runs (create, list, get, delete, pause)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from treadle.api.deps import engine
from treadle.api.views import iso
from treadle.engine.schedules import create_schedule, schedule_from_spec, set_paused
from treadle.engine.service import EngineService
from treadle.errors import DefinitionError
from treadle.model.parse import format_validation_error
from treadle.model.triggers import HOOK_NAME_PATTERN, ScheduleSpec
from treadle.store.trigger_records import ScheduleRecord

router = APIRouter(prefix="/api/v1", tags=["schedules"])


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=HOOK_NAME_PATTERN)
    definition: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)


def schedule_view(s: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "definition": s.definition_name,
        "version": s.definition_version,
        "cron": s.cron,
        "timezone": s.timezone,
        "inputs": s.inputs,
        "overlap": s.overlap,
        "catchup": s.catchup,
        "grace": s.grace,
        "paused": s.paused,
        "source": s.source,
        "next_fire_at": iso(s.next_fire_at) if not s.paused else None,
        "last_fire_at": iso(s.last_fire_at),
        "last_run_id": s.last_run_id,
        "last_error": s.last_error,
        "fired": s.fired,
        "skipped": s.skipped,
        "created_at": iso(s.created_at),
        "etag": str(s.version),
    }


@router.post("/schedules", status_code=201, summary="Create a schedule")
async def post_schedule(
    body: ScheduleRequest, service: EngineService = Depends(engine)
) -> JSONResponse:
    try:
        spec = ScheduleSpec.model_validate(body.model_extra or {})
    except ValidationError as exc:
        summary, details = format_validation_error(exc)
        raise DefinitionError(f"invalid schedule: {summary}", details=details) from exc
    record = schedule_from_spec(
        body.name, body.definition, spec, await service.store.now(), version=body.version
    )
    created = await create_schedule(service.store, record)
    return JSONResponse(schedule_view(created), status_code=201)


@router.get("/schedules", summary="List schedules")
async def list_schedules(service: EngineService = Depends(engine)) -> dict[str, Any]:
    return {"items": [schedule_view(s) for s in await service.store.list_schedules()]}


@router.get("/schedules/{name}", summary="A schedule with its next fire time and counters")
async def get_schedule(name: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return schedule_view(await service.store.get_schedule(name))


@router.delete("/schedules/{name}", status_code=204, summary="Delete a schedule")
async def delete_schedule(name: str, service: EngineService = Depends(engine)) -> Response:
    await service.store.delete_schedule(name)
    return Response(status_code=204)


@router.post("/schedules/{name}/pause", summary="Stop firing until unpaused")
async def pause_schedule(name: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return schedule_view(await set_paused(service.store, name, True))


@router.post("/schedules/{name}/unpause", summary="Fire again from the next tick after now")
async def unpause_schedule(name: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return schedule_view(await set_paused(service.store, name, False))
