"""``/api/v1/hooks``: webhooks that start runs (CRUD, and the signed trigger endpoint)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.deps import engine
from treadle.api.views import iso, run_summary
from treadle.engine.hooks import SIGNATURE_HEADER, create_hook, trigger_hook
from treadle.engine.service import EngineService
from treadle.model.triggers import HOOK_NAME_PATTERN
from treadle.store.trigger_records import HookRecord

router = APIRouter(prefix="/api/v1", tags=["hooks"])


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=HOOK_NAME_PATTERN)
    definition: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    secret: str | None = Field(
        default=None, min_length=16, max_length=400, description="Generated when absent."
    )
    inputs_key: str | None = Field(default=None, min_length=1, max_length=200)


def hook_view(h: HookRecord, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": h.name,
        "definition": h.definition_name,
        "version": h.definition_version,
        "inputs_key": h.inputs_key,
        "source": h.source,
        "secret_env": h.secret_env,
        "created_at": iso(h.created_at),
        "url": f"/api/v1/hooks/{h.name}",
    }
    if with_secret:
        view["secret"] = h.secret
    return view


@router.post("/hooks", status_code=201, summary="Create a hook (the secret is shown only here)")
async def post_hook(body: HookRequest, service: EngineService = Depends(engine)) -> JSONResponse:
    hook = await create_hook(
        service.store,
        body.name,
        body.definition,
        version=body.version,
        secret=body.secret,
        inputs_key=body.inputs_key,
    )
    return JSONResponse(hook_view(hook, with_secret=True), status_code=201)


@router.get("/hooks", summary="List hooks (without secrets)")
async def list_hooks(service: EngineService = Depends(engine)) -> dict[str, Any]:
    return {"items": [hook_view(h) for h in await service.store.list_hooks()]}


@router.get("/hooks/{name}", summary="A hook (without its secret)")
async def get_hook(name: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    return hook_view(await service.store.get_hook(name))


@router.delete("/hooks/{name}", status_code=204, summary="Delete a hook")
async def delete_hook(name: str, service: EngineService = Depends(engine)) -> Response:
    await service.store.delete_hook(name)
    return Response(status_code=204)


@router.post(
    "/hooks/{name}",
    status_code=201,
    summary="Start a run: the JSON body is its inputs; needs X-Treadle-Signature",
)
async def call_hook(
    name: str,
    request: Request,
    signature: str | None = Header(default=None, alias=SIGNATURE_HEADER),
    service: EngineService = Depends(engine),
) -> JSONResponse:
    body = await request.body()
    run = await trigger_hook(service.store, service.start_run, name, body, signature)
    return JSONResponse(run_summary(run), status_code=201)
