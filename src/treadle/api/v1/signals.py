"""``/api/v1/runs/{id}/signals``: send a named signal to a run's wait tasks, list signals."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from treadle.api.deps import engine
from treadle.api.views import iso
from treadle.engine.service import EngineService
from treadle.engine.waits import send_signal
from treadle.errors import DefinitionError
from treadle.store.trigger_records import SignalRecord, WaitRecord

router = APIRouter(prefix="/api/v1", tags=["signals"])


def signal_view(s: SignalRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "payload": s.payload,
        "created_at": iso(s.created_at),
        "consumed_by": s.consumed_by,
        "consumed_at": iso(s.consumed_at),
    }


def wait_view(w: WaitRecord) -> dict[str, Any]:
    return {
        "task_id": w.task_id,
        "signal": w.signal,
        "wake_at": iso(w.wake_at),
        "on_wake": w.on_wake,
        "since": iso(w.created_at),
    }


@router.post(
    "/runs/{run_id}/signals/{name}",
    status_code=201,
    summary="Send a signal; its JSON body becomes the output of the wait task it wakes",
)
async def post_signal(
    run_id: str, name: str, request: Request, service: EngineService = Depends(engine)
) -> JSONResponse:
    raw = await request.body()
    payload: Any = None
    if raw.strip():
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"the signal payload is not JSON: {exc}") from exc
    signal, woke = await send_signal(service.store, service.broker, run_id, name, payload)
    body = {"run_id": run_id, **signal_view(signal), "woke": woke}
    return JSONResponse(body, status_code=201)


@router.get("/runs/{run_id}/signals", summary="Signals a run received, and its waiting tasks")
async def list_signals(run_id: str, service: EngineService = Depends(engine)) -> dict[str, Any]:
    await service.get_run(run_id)
    signals = await service.store.list_signals(run_id)
    waits = await service.store.list_waits(run_id)
    return {"items": [signal_view(s) for s in signals], "waiting": [wait_view(w) for w in waits]}
