"""Health, readiness and the workers registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from treadle import __version__
from treadle.api.deps import engine
from treadle.api.views import worker_view
from treadle.engine.service import EngineService
from treadle.errors import TreadleError

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="The store and broker answer")
async def readyz(request: Request) -> JSONResponse:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    checks: dict[str, str] = {}
    for name, probe in (("store", service.store.ping), ("broker", service.broker.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except TreadleError as exc:
            checks[name] = exc.message
        except Exception as exc:  # a driver error the store or broker did not translate
            checks[name] = f"{type(exc).__name__}: {exc}"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", **checks})
    return JSONResponse({"status": "not ready", **checks}, status_code=503)


@router.get("/api/v1/workers", summary="Workers with their queues and last heartbeat")
async def workers(request: Request, service: EngineService = Depends(engine)) -> dict[str, Any]:
    now = await service.store.now()
    lost_after = 3 * float(request.app.state.settings.heartbeat_seconds)
    return {"items": [worker_view(w, now, lost_after) for w in await service.store.list_workers()]}
