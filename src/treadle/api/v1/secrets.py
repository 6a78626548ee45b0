"""``/api/v1/secrets``: set, list and delete secrets. No route ever returns a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.deps import engine
from treadle.api.views import iso
from treadle.engine.service import EngineService
from treadle.errors import DefinitionError
from treadle.secrets.refs import valid_name
from treadle.secrets.vault import Vault, require
from treadle.store.secrets_base import SecretRecord

router = APIRouter(prefix="/api/v1", tags=["secrets"])

MAX_VALUE_CHARS = 64 * 1024


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=MAX_VALUE_CHARS, description="Stored encrypted; never shown")


def secret_view(record: SecretRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def _checked(name: str) -> str:
    if not valid_name(name):
        raise DefinitionError(
            f"bad secret name {name!r}: use up to 200 letters, digits, '_', '.' and '-', "
            "starting with a letter, digit or '_'",
            details={"field": "name"},
        )
    return name


def _vault(request: Request) -> Vault:
    node = getattr(request.app.state, "node", None)
    return require(getattr(node, "vault", None))


@router.put("/secrets/{name}", summary="Create or replace a secret (the value is write-only)")
async def put_secret(
    name: str, body: SecretValue, request: Request, service: EngineService = Depends(engine)
) -> dict[str, Any]:
    ciphertext = _vault(request).encrypt(body.value)
    return secret_view(await service.store.put_secret(_checked(name), ciphertext))


@router.get("/secrets", summary="List secrets: names and times only")
async def list_secrets(service: EngineService = Depends(engine)) -> dict[str, Any]:
    return {"items": [secret_view(s) for s in await service.store.list_secrets()]}


@router.delete("/secrets/{name}", status_code=204, summary="Delete a secret")
async def delete_secret(name: str, service: EngineService = Depends(engine)) -> Response:
    await service.store.delete_secret(_checked(name))
    return Response(status_code=204)
