"""Igor's HTTP API on treadle: jobs, layers and tasks under ``/api/v1``.

- ``POST /api/v1/jobs``: a CreateJobRequest starts a run with layers; the answer is the job
  with its layers and tasks (ids, etags, statuses).
- ``POST /api/v1/layers`` (the README's route) and ``POST /api/v1/tasks`` (the server's) add
  tasks to layers that have not started; ``/layers`` answers per item (a task or an error),
  ``/tasks`` all or nothing, like upstream.
- ``GET /api/v1/{jobs,layers,tasks}`` list with ``limit``, ``offset``, ``job_ids``,
  ``layer_ids``, ``task_ids`` and ``statuses``.
- ``PATCH /api/v1/{pause,unpause,kill,retry,skip}`` is the native bulk control route, which
  takes Igor's ``[{"kind","id","etag"}]`` and answers ``{"updated": n}`` too.

Errors are Igor's: status 400 and a text/plain body with the message and a newline.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import treadle.compat.igor.handlers  # noqa: F401  (registers the sleep type)
from treadle.compat.igor import translate
from treadle.compat.igor.views import STATUSES, JobContext
from treadle.engine.service import EngineService
from treadle.errors import TreadleError

router = APIRouter(prefix="/api/v1", tags=["igor"])

_MAX_LIMIT = 10_000
_DEFAULT_LIMIT = 1000
_UUIDISH = re.compile(r"^[0-9a-f][0-9a-f-]{7,63}$")


class IgorError(Exception):
    """A client error answered as upstream does: 400 and ``<message>\\n`` as text."""


def _error(message: str, status: int = 400) -> Response:
    return PlainTextResponse(message + "\n", status_code=status)


async def _context(service: EngineService, run_id: str) -> JobContext:
    store = service.store
    run = await store.get_run(run_id)
    return JobContext(
        run,
        await store.get_layers(run_id),
        await store.get_tasks(run_id),
        await store.list_events(run_id),
    )


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise IgorError(f"invalid JSON: {exc}") from None


@router.post("/jobs", summary="Igor: create a job with layers and tasks")
async def create_job(request: Request) -> Response:
    service: EngineService = request.app.state.engine
    try:
        doc = await _body(request)
        native = translate.to_native(doc)
        run = await service.start_run(
            native, dialect="igor", labels=translate.labels(doc, native), actor="igor"
        )
        return JSONResponse((await _context(service, run.id)).created())
    except (IgorError, TreadleError) as exc:
        return _error(str(getattr(exc, "message", exc)))


async def _add(service: EngineService, item: Any, index: int) -> dict[str, Any]:
    """Add one CreateTaskRequest to its layer; TreadleError when that is not possible."""
    if not isinstance(item, dict):
        raise IgorError(f"item {index} must be an object")
    layer_id = item.get("layer_id")
    if not isinstance(layer_id, str) or not layer_id:
        raise IgorError(f"item {index}: layer_id is required")
    layer = await service.store.get_layer(layer_id)
    context = await _context(service, layer.run_id)
    taken = {t.name for t in context.tasks}
    name = translate.native_name(item, taken, f"{layer.name}-{len(context.tasks)}")
    spec = translate.task_to_native(item, name, layer.name, f"item {index}")
    added = await service.add_layer_tasks(layer_id, [spec], "igor")
    return (await _context(service, layer.run_id)).task(added[0])


@router.post("/layers", summary="Igor: add tasks to layers that have not started")
async def add_to_layers(request: Request) -> Response:
    service: EngineService = request.app.state.engine
    try:
        items = await _body(request)
        if not isinstance(items, list):
            raise IgorError("expected a list of tasks with layer_id")
    except IgorError as exc:
        return _error(str(exc))
    answers: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            answers.append(await _add(service, item, index))
        except (IgorError, TreadleError) as exc:
            message = str(getattr(exc, "message", exc))
            layer_id = item.get("layer_id") if isinstance(item, dict) else None
            answers.append({"layer_id": layer_id, "error": message})
    return JSONResponse(answers)


@router.post("/tasks", summary="Igor: add tasks to layers (all must be addable)")
async def create_tasks(request: Request) -> Response:
    service: EngineService = request.app.state.engine
    try:
        items = await _body(request)
        if not isinstance(items, list):
            raise IgorError("expected a list of tasks with layer_id")
        # Check every layer first so a bad item leaves the others unadded.
        for index, item in enumerate(items):
            layer_id = item.get("layer_id") if isinstance(item, dict) else None
            if not isinstance(layer_id, str) or not layer_id:
                raise IgorError(f"item {index}: layer_id is required")
            layer = await service.store.get_layer(layer_id)
            if layer.status != "pending":
                raise IgorError("invalid state")
        return JSONResponse([await _add(service, item, i) for i, item in enumerate(items)])
    except (IgorError, TreadleError) as exc:
        return _error(str(getattr(exc, "message", exc)))


class _Query:
    """Igor's list query: limit/offset, id lists checked for shape, statuses."""

    def __init__(self, request: Request) -> None:
        params = request.query_params
        try:
            limit = int(params.get("limit", _DEFAULT_LIMIT))
            offset = int(params.get("offset", 0))
        except ValueError:
            raise IgorError("limit and offset must be whole numbers") from None
        self.limit = min(limit if limit > 0 else _DEFAULT_LIMIT, _MAX_LIMIT)
        self.offset = max(offset, 0)
        self.ids: dict[str, set[str]] = {}
        for key, label in (("job_ids", "job"), ("layer_ids", "layer"), ("task_ids", "task")):
            values = params.getlist(key)
            for value in values:
                if not _UUIDISH.match(value):
                    raise IgorError(f"bad {label} id")
            if values:
                self.ids[key] = set(values)
        statuses = {s.upper() for s in params.getlist("statuses")}
        if statuses - set(STATUSES):
            raise IgorError("bad status")
        self.statuses = statuses

    def keep(self, row: dict[str, Any], **keys: str) -> bool:
        if self.statuses and row["status"] not in self.statuses:
            return False
        return all(row[field] in self.ids[key] for key, field in keys.items() if key in self.ids)

    def page(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return rows[self.offset : self.offset + self.limit]


async def _igor_runs(service: EngineService, query: _Query) -> list[str]:
    """Ids of the Igor runs a query can touch (narrowed by the ids it names), oldest first."""
    store = service.store
    if "job_ids" in query.ids:
        return sorted(query.ids["job_ids"])
    if "layer_ids" in query.ids:
        return sorted({(await store.get_layer(i)).run_id for i in query.ids["layer_ids"]})
    if "task_ids" in query.ids:
        return sorted({(await store.get_task(i)).run_id for i in query.ids["task_ids"]})
    found: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_runs(limit=500, cursor=cursor)
        found.extend(r.id for r in page if r.dialect == "igor")
        if cursor is None or len(found) >= query.offset + query.limit:
            return list(reversed(found))


async def _contexts(service: EngineService, query: _Query) -> list[JobContext]:
    contexts = []
    for run_id in await _igor_runs(service, query):
        try:
            context = await _context(service, run_id)
        except TreadleError:
            continue  # an id that names nothing filters everything out, as upstream
        if context.run.dialect == "igor":
            contexts.append(context)
    return contexts


async def _listing(request: Request, what: str) -> Response:
    service: EngineService = request.app.state.engine
    try:
        query = _Query(request)
        rows: list[dict[str, Any]] = []
        for ctx in await _contexts(service, query):
            if what == "jobs":
                rows.extend(r for r in [ctx.job()] if query.keep(r, job_ids="id"))
            elif what == "layers":
                views = [ctx.layer(layer) for layer in ctx.layers]
                rows.extend(r for r in views if query.keep(r, job_ids="job_id", layer_ids="id"))
            else:
                views = [ctx.task(t) for t in ctx.tasks]
                rows.extend(
                    r
                    for r in views
                    if query.keep(r, job_ids="job_id", layer_ids="layer_id", task_ids="id")
                )
        return JSONResponse(query.page(rows))
    except IgorError as exc:
        return _error(str(exc))
    except TreadleError:
        return JSONResponse([])


@router.get("/jobs", summary="Igor: list jobs")
async def list_jobs(request: Request) -> Response:
    return await _listing(request, "jobs")


@router.get("/layers", summary="Igor: list layers")
async def list_layers(request: Request) -> Response:
    return await _listing(request, "layers")


@router.get("/tasks", summary="Igor: list tasks")
async def list_tasks(request: Request) -> Response:
    return await _listing(request, "tasks")
