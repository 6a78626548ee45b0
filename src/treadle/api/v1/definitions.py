"""``/api/v1/definitions`` and ``/api/v1/schema/definition``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from treadle.api.definitions_io import import_definition_text
from treadle.api.deps import engine
from treadle.api.views import definition_view
from treadle.engine.service import EngineService
from treadle.model.definition import Definition

router = APIRouter(prefix="/api/v1", tags=["definitions"])


@router.post(
    "/definitions",
    status_code=201,
    summary="Store a definition (JSON or YAML)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_definition(
    request: Request,
    dialect: str | None = Query(default=None, description="native|gin|tork|mender|flower|igor"),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    body = await request.body()
    record = await import_definition_text(
        service, body, request.headers.get("content-type"), dialect
    )
    return JSONResponse(
        {"name": record.name, "version": record.version, "dialect": record.dialect}, status_code=201
    )


@router.get("/definitions", summary="Latest version of every definition")
async def list_definitions(service: EngineService = Depends(engine)) -> dict[str, Any]:
    records = await service.store.list_definitions()
    return {"items": [definition_view(r, with_source=False) for r in records]}


@router.get("/definitions/{name}", summary="One definition (latest or ?version=N)")
async def get_definition(
    name: str,
    version: int | None = Query(default=None, ge=1),
    service: EngineService = Depends(engine),
) -> dict[str, Any]:
    record = await service.get_definition(name, version)
    view = definition_view(record)
    view["versions"] = await service.store.definition_versions(name)
    return view


@router.get("/definitions/{name}/versions/{version}", summary="One version of a definition")
async def get_definition_version(
    name: str, version: int, service: EngineService = Depends(engine)
) -> dict[str, Any]:
    return definition_view(await service.get_definition(name, version))


@router.get("/schema/definition", summary="JSON Schema of native definitions")
async def definition_schema() -> dict[str, Any]:
    return Definition.model_json_schema(by_alias=True)
