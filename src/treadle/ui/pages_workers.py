"""Workers with their queues, in-flight counts and heartbeats; queue depths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from treadle.api.views import worker_view
from treadle.ui.auth import require_login
from treadle.ui.data import queue_depths
from treadle.ui.fmt import ago
from treadle.ui.web import UIRoute, render, service_of

router = APIRouter(route_class=UIRoute, dependencies=[Depends(require_login)])


async def _context(request: Request) -> dict[str, Any]:
    store = service_of(request).store
    now = await store.now()
    lost_after = 3 * float(request.app.state.settings.heartbeat_seconds)
    workers = []
    for record in await store.list_workers():
        view = worker_view(record, now, lost_after)
        view["last_seen_ago"] = ago(record.last_seen, now)
        workers.append(view)
    depths = await queue_depths(store)
    # Every queue a worker serves is listed, also when nothing waits on it.
    capacity: dict[str, int] = {}
    for view in workers:
        if view["status"] == "alive":
            for queue, slots in view["queues"].items():
                capacity[queue] = capacity.get(queue, 0) + int(slots)
    queues = sorted(set(capacity) | set(depths or {}))
    rows = [
        {
            "name": q,
            "queued": (depths or {}).get(q, {}).get("queued", 0),
            "running": (depths or {}).get(q, {}).get("running", 0),
            "capacity": capacity.get(q, 0),
        }
        for q in queues
    ]
    alive_first = sorted(workers, key=lambda w: (w["status"] != "alive", w["id"]))
    return {
        "workers": alive_first,
        "queues": rows,
        "depths_known": depths is not None,
        "now": now,
        "lost_after": lost_after,
    }


@router.get("/ui/workers", response_class=HTMLResponse, include_in_schema=False)
async def workers_page(request: Request) -> HTMLResponse:
    return render(request, "workers.html", title="Workers and queues", **await _context(request))


@router.get("/ui/workers/tables", response_class=HTMLResponse, include_in_schema=False)
async def workers_tables(request: Request) -> HTMLResponse:
    return render(request, "_workers_tables.html", **await _context(request))
