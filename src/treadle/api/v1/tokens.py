"""``/api/v1/tokens``: API tokens (admin scope). The token itself is shown only on create."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.deps import engine
from treadle.api.views import iso
from treadle.engine.service import EngineService
from treadle.store.token_records import TokenRecord
from treadle.tokens.scopes import Scope
from treadle.tokens.service import NAME_PATTERN, issue_token, revoke_token

router = APIRouter(prefix="/api/v1", tags=["tokens"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    scope: Scope = Scope.READ


def token_view(t: TokenRecord) -> dict[str, Any]:
    """A token as listed: never its hash, only the prefix that tells tokens apart."""
    return {
        "id": t.id,
        "name": t.name,
        "scope": t.scope,
        "prefix": t.prefix,
        "created_at": iso(t.created_at),
        "last_used_at": iso(t.last_used_at),
    }


@router.post("/tokens", status_code=201, summary="Create a token (shown only in this answer)")
async def post_token(body: TokenRequest, service: EngineService = Depends(engine)) -> JSONResponse:
    store = service.store
    raw, record = await issue_token(store, body.name, body.scope, await store.now())
    return JSONResponse({**token_view(record), "token": raw}, status_code=201)


@router.get("/tokens", summary="List tokens (without the tokens themselves)")
async def list_tokens(service: EngineService = Depends(engine)) -> dict[str, Any]:
    return {"items": [token_view(t) for t in await service.store.list_tokens()]}


@router.delete("/tokens/{name_or_id}", status_code=204, summary="Revoke a token by name or id")
async def delete_token(name_or_id: str, service: EngineService = Depends(engine)) -> Response:
    await revoke_token(service.store, name_or_id)
    return Response(status_code=204)
