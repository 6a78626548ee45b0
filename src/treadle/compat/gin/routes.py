"""gin's HTTP API: ``POST /wf/`` starts a workflow, ``GET /wf/{uuid}`` shows the runner.

Errors use gin's shape ``{"Message": ...}``. Unlike gin, an unknown workflow name is refused at
once (404) instead of being accepted and failing later, a missing run is a 404, and responses
are proper ``application/json``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from treadle.compat.gin import redis_source
from treadle.compat.gin.translate import GinWorkflow, parse_workflow, to_native
from treadle.compat.gin.view import runner_document, workflow_from_native
from treadle.engine.service import EngineService
from treadle.errors import NotFound, ServiceUnavailable, TreadleError
from treadle.store.records import DefinitionRecord

router = APIRouter(tags=["gin"])


def _message(text: str, status: int) -> JSONResponse:
    return JSONResponse({"Message": text}, status_code=status)


def _engine(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service


def _pick(doc: dict[str, Any], field: str) -> Any:
    """The value of ``field`` matched case-insensitively (the last spelling wins, as in Go)."""
    value = None
    for key, item in doc.items():
        if str(key).lower() == field.lower():
            value = item
    return value


def gin_workflow_of(record: DefinitionRecord) -> GinWorkflow:
    """The gin workflow behind a stored definition (a gin view when it was not gin)."""
    if record.dialect == "gin":
        try:
            return parse_workflow(json.loads(record.source))
        except (ValueError, TreadleError):
            pass
    return workflow_from_native(record.document)


async def _definition(service: EngineService, name: str) -> DefinitionRecord | None:
    try:
        return await service.get_definition(name)
    except NotFound:
        pass
    url = redis_source.configured_url()
    if url is None:
        return None
    doc = await redis_source.fetch_workflow(url, name)
    if doc is None:
        return None
    return await service.create_definition(
        to_native(doc), source=json.dumps(doc, indent=2), dialect="gin"
    )


async def _read_json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise _BadRequest(f"malformed JSON body: {exc}") from exc


class _BadRequest(Exception):
    pass


@router.post("/wf/", summary="gin: start a workflow by name")
@router.post("/wf", include_in_schema=False)
async def start_workflow(request: Request) -> JSONResponse:
    try:
        doc = await _read_json(request)
    except _BadRequest as exc:
        return _message(str(exc), 400)
    if not isinstance(doc, dict):
        return _message('the body must be a JSON object {"Name": ..., "Variables": {...}}', 400)
    name = _pick(doc, "Name")
    if not isinstance(name, str) or not name.strip():
        return _message("Name is missing: give the workflow's name", 400)
    variables = _pick(doc, "Variables")
    if variables is not None and not isinstance(variables, dict):
        return _message("Variables must be a JSON object", 400)
    service = _engine(request)
    try:
        record = await _definition(service, name)
    except TreadleError as exc:
        return _message(f"workflow {name!r}: {exc.message}", exc.status)
    if record is None:
        return _message(f"workflow {name!r} not found", 404)
    workflow = gin_workflow_of(record)
    labels = {"gin": {"workflow": workflow.to_document(), "runtime": variables}}
    try:
        run = await service.start_run(
            record.name,
            variables or {},
            version=record.version,
            dialect="gin",
            labels=labels,
            actor="gin-api",
        )
    except TreadleError as exc:
        return _message(exc.message, 400 if exc.status < 500 else exc.status)
    return JSONResponse({"UUID": run.id})


@router.get("/wf/{uuid}", summary="gin: a workflow runner's state")
async def get_runner(uuid: str, request: Request) -> JSONResponse:
    service = _engine(request)
    try:
        run = await service.get_run(uuid)
    except NotFound:
        return _message(f"no workflow run {uuid!r}", 404)
    tasks = await service.get_tasks(run.id)
    gin = run.labels.get("gin") if isinstance(run.labels, dict) else None
    if isinstance(gin, dict) and isinstance(gin.get("workflow"), dict):
        workflow = parse_workflow(gin["workflow"])
        runtime = gin.get("runtime")
    else:
        workflow = workflow_from_native(run.definition)
        runtime = run.inputs or None
    return JSONResponse(runner_document(run, tasks, workflow, runtime))


@router.get("/wf/", include_in_schema=False)
async def get_runner_without_id() -> JSONResponse:
    return _message("missing workflow run UUID: GET /wf/{uuid}", 400)


@router.api_route("/wf/{rest:path}", methods=["PUT", "PATCH", "DELETE"], include_in_schema=False)
async def method_not_allowed(request: Request, rest: str) -> JSONResponse:
    return _message(f'Method "{request.method}" not allowed', 405)


@router.get("/mon/", summary="gin: host information of this node")
async def monitor() -> JSONResponse:
    return JSONResponse(
        {
            "Hostname": socket.gethostname(),
            "EUID": os.geteuid(),
            "GID": os.getgid(),
            "PID": os.getpid(),
            "UID": os.getuid(),
            "UTF8": "\u2714",
        }
    )
