"""``GET /metrics``: Prometheus exposition of the process counters and the store's state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from treadle.observability import metrics

router = APIRouter(tags=["system"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    service = getattr(request.app.state, "engine", None)
    if service is not None:
        await metrics.refresh_state_gauges(service.store)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
