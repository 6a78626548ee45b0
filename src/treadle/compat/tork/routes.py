"""Tork's HTTP API over the engine.

Two generations are served side by side, each with its own error shape:

- the single-task API (``POST /task``, ``GET /task/{id}``, ``PUT /task/{id}/cancel``), errors
  as ``{"error": "..."}``. Its ``GET /status`` is not served: Mender's ``/status`` owns that path
  in the shared app; Tork clients can use ``GET /health``;
- the jobs API (``POST /jobs``, ``GET /jobs``, ``GET /jobs/{id}``, ``PUT /jobs/{id}/cancel``,
  ``PUT /jobs/{id}/restart``, ``GET /tasks/{id}``, ``GET /health``), errors as
  ``{"message": "..."}``.

A Tork task or job is one native run; its Tork document is kept in the run's labels so it can be
shown back as Tork shows it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

import treadle.compat.tork.handlers  # noqa: F401  (registers the no-container stand-in)
from treadle import __version__
from treadle.compat.rerun import rerun_from
from treadle.compat.tork import views
from treadle.compat.tork.translate import (
    job_to_native,
    job_variables,
    task_name,
    task_to_native,
)
from treadle.engine.service import EngineService
from treadle.errors import Conflict, DefinitionError, NotFound, ServiceUnavailable, TreadleError
from treadle.model.parse import load_document
from treadle.model.states import RunStatus
from treadle.store.records import RunRecord, TaskRecord

router = APIRouter(tags=["tork"])

_JSON = ("application/json",)
_YAML = ("text/yaml", "application/x-yaml", "application/yaml", "text/x-yaml")


class _TorkError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _engine(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service


async def _answer(key: str, work: Callable[[], Awaitable[Any]], status: int = 200) -> JSONResponse:
    """Run ``work`` and shape errors as Tork does (``{key: message}``)."""
    try:
        return JSONResponse(await work(), status_code=status)
    except _TorkError as exc:
        return JSONResponse({key: exc.message}, status_code=exc.status)
    except DefinitionError as exc:
        return JSONResponse({key: exc.message}, status_code=400)
    except TreadleError as exc:
        return JSONResponse({key: exc.message}, status_code=exc.status)


async def _read_document(request: Request) -> dict[str, Any]:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not content_type:
        raise _TorkError(400, "missing content type")
    if content_type not in _JSON + _YAML:
        raise _TorkError(
            400, f"unknown content type: {content_type} (use application/json or text/yaml)"
        )
    body = await request.body()
    if not body.strip():
        raise _TorkError(400, "empty request body")
    if content_type in _JSON:
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _TorkError(400, f"malformed JSON: {exc}") from None
    else:
        doc = load_document(body, "text/yaml")
    if not isinstance(doc, dict):
        raise _TorkError(400, "the body must be a mapping (a task or a job)")
    return doc


async def _tork_run(service: EngineService, given: str, kind: str) -> RunRecord:
    for candidate in views.native_ids(given):
        try:
            run = await service.get_run(candidate)
        except NotFound:
            continue
        label = run.labels.get(views.LABEL)
        if isinstance(label, dict) and label.get("kind") == kind:
            return run
    raise _TorkError(404, f"{kind} {given} not found")


async def _cancel(service: EngineService, run: RunRecord) -> None:
    """Cancel, trying again when the coordinator moved the run on meanwhile."""
    for _ in range(10):
        try:
            await service.cancel_run(run.id, actor="tork")
            return
        except Conflict:
            run = await service.get_run(run.id)
            if RunStatus(run.status).terminal:
                raise _TorkError(400, "it is not running any more") from None
            await asyncio.sleep(0.05)
    raise _TorkError(409, "the run keeps changing; try again")


async def _tasks(service: EngineService, run: RunRecord) -> list[TaskRecord]:
    return sorted(await service.get_tasks(run.id), key=lambda t: t.seq)


# -- the single-task API ----------------------------------------------------------------------
@router.post("/task", summary="Tork: submit one task (JSON or text/yaml)")
async def submit_task(request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        doc = await _read_document(request)
        if "tasks" in doc:
            raise _TorkError(400, "this is a job (it has tasks): POST it to /jobs")
        native = task_to_native(doc)
        label = {"kind": "task", "doc": doc, "main": task_name(str(doc.get("name") or "task"))}
        run = await service.start_run(native, {}, dialect="tork", labels={views.LABEL: label})
        return views.single_task_view(run, await _tasks(service, run))

    return await _answer("error", work)


@router.get("/task/{task_id}", summary="Tork: a task's state and result")
async def get_task(task_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        run = await _tork_run(service, task_id, "task")
        return views.single_task_view(run, await _tasks(service, run))

    return await _answer("error", work)


@router.put("/task/{task_id}/cancel", summary="Tork: cancel a task")
async def cancel_task(task_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        run = await _tork_run(service, task_id, "task")
        if RunStatus(run.status).terminal:
            raise _TorkError(400, "task is not running")
        await _cancel(service, run)
        return {"status": "OK"}

    return await _answer("error", work)


# -- the jobs API -----------------------------------------------------------------------------
@router.get("/health", summary="Tork: health")
async def health() -> dict[str, str]:
    return {"status": "UP", "version": __version__}


@router.post("/jobs", summary="Tork: submit a job (JSON or text/yaml)")
async def submit_job(request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        doc = await _read_document(request)
        native = job_to_native(doc)
        label = {"kind": "job", "doc": doc, "vars": job_variables(doc)}
        run = await service.start_run(native, {}, dialect="tork", labels={views.LABEL: label})
        return views.job_view(run, await _tasks(service, run))

    return await _answer("message", work)


@router.get("/jobs", summary="Tork: a page of jobs, newest first")
async def list_jobs(
    request: Request,
    page: int = Query(default=1),
    size: int = Query(default=10),
    q: str = Query(default=""),
) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        number = max(page, 1)
        per_page = min(max(size, 1), 20)
        jobs = await _all_jobs(service, q.strip().lower())
        total = len(jobs)
        chosen = jobs[(number - 1) * per_page : number * per_page]
        items = [views.job_summary(r, await _tasks(service, r)) for r in chosen]
        return {
            "items": items,
            "number": number,
            "size": len(items),
            "totalPages": (total + per_page - 1) // per_page,
            "totalItems": total,
        }

    return await _answer("message", work)


async def _all_jobs(service: EngineService, query: str) -> list[RunRecord]:
    found: list[RunRecord] = []
    cursor: str | None = None
    while True:
        runs, cursor = await service.store.list_runs(limit=500, cursor=cursor)
        for run in runs:
            label = run.labels.get(views.LABEL)
            if not isinstance(label, dict) or label.get("kind") != "job":
                continue
            name = str((label.get("doc") or {}).get("name", ""))
            if query and query not in name.lower() and query not in run.status:
                continue
            found.append(run)
        if cursor is None:
            return found


@router.get("/jobs/{job_id}", summary="Tork: a job with its execution")
async def get_job(job_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        run = await _tork_run(service, job_id, "job")
        return views.job_view(run, await _tasks(service, run))

    return await _answer("message", work)


@router.put("/jobs/{job_id}/cancel", summary="Tork: cancel a job")
async def cancel_job(job_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        run = await _tork_run(service, job_id, "job")
        if RunStatus(run.status).terminal:
            raise _TorkError(400, "job is not running")
        await _cancel(service, run)
        return {"status": "OK"}

    return await _answer("message", work)


@router.put("/jobs/{job_id}/restart", summary="Tork: restart a failed or cancelled job")
async def restart_job(job_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        run = await _tork_run(service, job_id, "job")
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise _TorkError(400, "job is not failed or cancelled")
        tasks = await _tasks(service, run)
        position = views.job_position(tasks)
        await rerun_from(service, run.id, max(position - 1, 0), actor="tork")
        return {"status": "OK"}

    return await _answer("message", work)


@router.get("/tasks/{task_id}", summary="Tork: one task of a job")
async def get_job_task(task_id: str, request: Request) -> JSONResponse:
    async def work() -> dict[str, Any]:
        service = _engine(request)
        for candidate in views.native_ids(task_id):
            try:
                task = await service.store.get_task(candidate)
            except NotFound:
                continue
            run = await service.get_run(task.run_id)
            if isinstance(run.labels.get(views.LABEL), dict):
                return views.execution_view(run, task, task.seq + 1)
        raise _TorkError(404, f"task {task_id} not found")

    return await _answer("message", work)
