"""The run page, its live stream (Server-Sent Events) and the streaming task log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from html import escape

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from treadle.engine.service import EngineService
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.records import LogChunk
from treadle.ui.auth import require_login
from treadle.ui.data import run_snapshot
from treadle.ui.run_view import PARTS, pick_task, render_parts
from treadle.ui.web import UIRoute, render, service_of

router = APIRouter(route_class=UIRoute, dependencies=[Depends(require_login)])

#: How often the stream looks for changes, and how often it redraws anyway (durations grow).
POLL_SECONDS = 0.5
REDRAW_ACTIVE = 2.0
REDRAW_IDLE = 15.0
#: A stream ends after this long; the browser reconnects at once (bounds stale connections).
STREAM_LIFETIME = 600.0
_LOG_KEEPALIVE = 15.0
_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: str, event_id: str | int | None = None) -> str:
    """One Server-Sent Events message (every line of ``data`` as its own data field)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


def log_html(chunks: list[LogChunk], last_attempt: str | None) -> tuple[str, str | None]:
    """Escaped log text with a marker wherever a new attempt begins."""
    parts = []
    for chunk in chunks:
        if chunk.attempt_id and chunk.attempt_id != last_attempt:
            number = chunk.attempt_id.rsplit(".", 1)[-1]
            parts.append(f'<span class="log-attempt">── attempt {escape(number)} ──</span>\n')
            last_attempt = chunk.attempt_id
        css = "log-err" if chunk.stream == "stderr" else "log-out"
        parts.append(f'<span class="{css}">{escape(chunk.text)}</span>')
    return "".join(parts), last_attempt


async def _initial_logs(service: EngineService, task_id: str) -> tuple[str, int, str | None]:
    chunks = await service.read_logs(task_id, 0)
    html, last_attempt = log_html(chunks, None)
    return html, (chunks[-1].id if chunks else 0), last_attempt


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
async def run_page(request: Request, run_id: str) -> HTMLResponse:
    service = service_of(request)
    snap = await run_snapshot(service.store, run_id)
    wanted = request.query_params.get("task")
    parts = render_parts(snap, wanted)
    selected = pick_task(snap, wanted)
    logs, log_cursor, log_attempt = ("", 0, None)
    if selected is not None:
        logs, log_cursor, log_attempt = await _initial_logs(service, selected.id)
    return render(
        request,
        "run.html",
        title=f"Run {run_id[:8]} · {snap.run.definition_name}",
        snap=snap,
        run=snap.run,
        parts=parts,
        selected=selected,
        logs=logs,
        log_cursor=log_cursor,
        log_attempt=log_attempt or "",
        log_done=selected is not None and TaskStatus(selected.status).terminal,
        now=snap.now,
    )


async def _fingerprint(service: EngineService, run_id: str) -> tuple[object, ...]:
    run = await service.store.get_run(run_id)
    tasks = await service.store.get_task_states(run_id)
    return (run.version, run.status, tuple((t.id, t.version) for t in tasks))


async def _run_events(request: Request, run_id: str, wanted: str | None) -> AsyncIterator[str]:
    service = service_of(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_LIFETIME
    sent: dict[str, str] = {}
    seen: tuple[object, ...] | None = None
    drawn_at = 0.0
    active = True
    yield "retry: 1000\n\n"
    while loop.time() < ends and not await request.is_disconnected():
        mark = await _fingerprint(service, run_id)
        every = REDRAW_ACTIVE if active else REDRAW_IDLE
        if mark != seen or loop.time() - drawn_at >= every:
            snap = await run_snapshot(service.store, run_id)
            active = not RunStatus(snap.run.status).terminal
            seen, drawn_at = mark, loop.time()
            parts = render_parts(snap, wanted)
            for name in PARTS:
                if sent.get(name) != parts[name]:
                    sent[name] = parts[name]
                    yield sse(name, parts[name])
        await asyncio.sleep(POLL_SECONDS)


@router.get("/ui/runs/{run_id}/stream", include_in_schema=False)
async def run_stream(request: Request, run_id: str) -> StreamingResponse:
    """Live parts of the run page, sent when they change (htmx's SSE extension swaps them)."""
    await service_of(request).store.get_run(run_id)  # a 404 now rather than a broken stream
    wanted = request.query_params.get("task")
    return StreamingResponse(
        _run_events(request, run_id, wanted),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


async def _log_events(
    request: Request, task_id: str, after: int, last_attempt: str | None
) -> AsyncIterator[str]:
    service = service_of(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_LIFETIME
    quiet_since = loop.time()
    yield "retry: 1000\n\n"
    while loop.time() < ends and not await request.is_disconnected():
        chunks = await service.read_logs(task_id, after)
        if chunks:
            html, last_attempt = log_html(chunks, last_attempt)
            after = chunks[-1].id
            quiet_since = loop.time()
            yield sse("log", html, f"{after}/{last_attempt or ''}")
            continue
        task = await service.store.get_task(task_id)
        if TaskStatus(task.status).terminal:
            # The last lines may land together with the outcome: read once more.
            chunks = await service.read_logs(task_id, after)
            if chunks:
                html, last_attempt = log_html(chunks, last_attempt)
                after = chunks[-1].id
                yield sse("log", html, f"{after}/{last_attempt or ''}")
            yield sse("end", task.status, f"{after}/{last_attempt or ''}")
            return
        if loop.time() - quiet_since > _LOG_KEEPALIVE:
            quiet_since = loop.time()
            yield ": still running\n\n"
        await asyncio.sleep(0.3)


@router.get("/ui/runs/{run_id}/tasks/{name}/logs/stream", include_in_schema=False)
async def log_stream(request: Request, run_id: str, name: str) -> StreamingResponse:
    """The task's log from ``after`` (or Last-Event-ID) on, as it is written; ``end`` at the
    end. Each message's id is ``<last chunk id>/<its attempt id>``, where a reconnect resumes."""
    service = service_of(request)
    task = await service.task_by_name(run_id, name)
    resume = request.headers.get("last-event-id", "")
    raw, _, attempt_text = resume.partition("/")
    if not resume:
        raw = request.query_params.get("after", "0")
        attempt_text = request.query_params.get("attempt", "")
    after = int(raw) if raw.isdigit() else 0
    attempt = attempt_text or None
    return StreamingResponse(
        _log_events(request, task.id, after, attempt),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )
