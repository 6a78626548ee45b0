"""Request-scoped helpers shared by the routers."""

from __future__ import annotations

from fastapi import Request

from treadle.engine.service import EngineService
from treadle.errors import ServiceUnavailable


def engine(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service
