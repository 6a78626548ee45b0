"""Mender workflows' HTTP API over treadle.

``GET /status``; ``POST /api/workflow/{name}`` (also under ``/api/v1``) starts a job from the
JSON inputs and answers 201 ``{"id", "name"}``; ``GET /api/workflow/{name}/{id}`` shows the job.
``/api/v1/workflow/{name}/batch`` and ``/api/v1/metadata/workflows`` follow Mender's later API.
Errors use Mender's shape ``{"error": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from treadle.compat.mender.translate import required_inputs, to_native
from treadle.compat.mender.view import job_document
from treadle.engine.service import EngineService
from treadle.errors import NotFound, ServiceUnavailable, TreadleError
from treadle.store.records import DefinitionRecord, RunRecord

router = APIRouter(tags=["mender"])
MIN_VERSION_HEADER = "X-Workflows-Min-Version"


class _Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _engine(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        raise _Refused("the body must be a JSON object of input parameters", 400)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Refused(f"malformed JSON body: {exc}", 400) from exc


async def _workflow(request: Request, name: str) -> DefinitionRecord:
    try:
        record = await _engine(request).get_definition(name)
    except NotFound:
        raise _Refused("workflow not found", 404) from None
    minimum = request.headers.get(MIN_VERSION_HEADER)
    if minimum is not None:
        try:
            wanted = int(minimum)
        except ValueError:
            raise _Refused(f"{MIN_VERSION_HEADER} must be a number", 400) from None
        if record.version < wanted:
            raise _Refused("workflow not found", 404)
    return record


def _check_inputs(record: DefinitionRecord, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise _Refused("the body must be a JSON object of input parameters", 400)
    missing = [n for n in required_inputs(record.document) if n not in given]
    if missing:
        raise _Refused(f"Missing input parameters: [{' '.join(missing)}]", 400)
    return given


async def _start(request: Request, record: DefinitionRecord, given: dict[str, Any]) -> RunRecord:
    declared = record.document.get("inputs") or {}
    # Mender keeps every posted parameter; the engine only takes the declared ones.
    inputs = {k: v for k, v in given.items() if k in declared} if declared else dict(given)
    try:
        return await _engine(request).start_run(
            record.name,
            inputs,
            version=record.version,
            dialect="mender",
            labels={"mender": {"input": given}},
            actor="mender-api",
        )
    except TreadleError as exc:
        raise _Refused(exc.message, 400 if exc.status < 500 else exc.status) from exc


@router.get("/status", summary="Mender: health check")
async def status() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/api/workflow/{name}", status_code=201, summary="Mender: start a workflow")
@router.post("/api/v1/workflow/{name}", status_code=201, include_in_schema=False)
async def start_workflow(name: str, request: Request) -> JSONResponse:
    try:
        record = await _workflow(request, name)
        given = _check_inputs(record, await _json_body(request))
        run = await _start(request, record, given)
    except _Refused as exc:
        return _error(exc.message, exc.status)
    return JSONResponse({"id": run.id, "name": record.name}, status_code=201)


@router.post("/api/v1/workflow/{name}/batch", status_code=201, summary="Mender: start many")
async def start_batch(name: str, request: Request) -> JSONResponse:
    try:
        record = await _workflow(request, name)
        items = await _json_body(request)
        if not isinstance(items, list):
            raise _Refused("the body must be a JSON array of input objects", 400)
        checked = [_check_inputs(record, item) for item in items]
    except _Refused as exc:
        return _error(exc.message, exc.status)
    answers: list[dict[str, Any]] = []
    for given in checked:
        try:
            run = await _start(request, record, given)
            answers.append({"id": run.id, "name": record.name})
        except _Refused as exc:
            answers.append({"error": exc.message})
    return JSONResponse(answers, status_code=201)


@router.get("/api/workflow/{name}/{job_id}", summary="Mender: a job's status and results")
@router.get("/api/v1/workflow/{name}/{job_id}", include_in_schema=False)
async def get_job(name: str, job_id: str, request: Request) -> JSONResponse:
    service = _engine(request)
    try:
        run = await service.get_run(job_id)
    except NotFound:
        return _error("not found", 404)
    if run.definition_name != name:
        return _error("not found", 404)
    tasks = await service.get_tasks(run.id)
    mender = run.labels.get("mender") if isinstance(run.labels, dict) else None
    given = mender.get("input") if isinstance(mender, dict) else None
    return JSONResponse(job_document(run, tasks, given if isinstance(given, dict) else None))


@router.get("/api/v1/metadata/workflows", summary="Mender: the loaded workflows")
async def list_workflows(request: Request) -> JSONResponse:
    records = await _engine(request).store.list_definitions()
    workflows = []
    for record in records:
        if record.dialect != "mender":
            continue
        try:
            workflows.append(json.loads(record.source))
        except ValueError:
            continue
    return JSONResponse(workflows)


@router.post("/api/v1/metadata/workflows", status_code=201, summary="Mender: register one")
async def register_workflow(request: Request) -> Response:
    service = _engine(request)
    try:
        doc = await _json_body(request)
        native = to_native(doc)
    except _Refused as exc:
        return _error(exc.message, exc.status)
    except TreadleError as exc:
        return _error(exc.message, 400)
    try:
        await service.get_definition(native["name"])
        return _error(f"Workflow {native['name']!r} already exists", 409)
    except NotFound:
        pass
    try:
        await service.create_definition(native, source=json.dumps(doc, indent=2), dialect="mender")
    except TreadleError as exc:
        return _error(exc.message, 400 if exc.status < 500 else exc.status)
    return Response(status_code=201)
