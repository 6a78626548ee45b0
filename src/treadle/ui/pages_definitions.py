"""Definitions (each version's source and graph) and the start-a-run form."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document
from treadle.store.records import DefinitionRecord
from treadle.ui.api_client import call_api
from treadle.ui.auth import require_login
from treadle.ui.forms import build_fields, parse_submission
from treadle.ui.graph_svg import NodeState, render_graph
from treadle.ui.layout import GraphTask, layout_graph
from treadle.ui.web import UIRoute, is_htmx, render, service_of

router = APIRouter(route_class=UIRoute, dependencies=[Depends(require_login)])


def definition_graph(record: DefinitionRecord) -> str:
    """The definition's task graph (no statuses: nothing has run)."""
    try:
        model = definition_from_document(record.document)
    except DefinitionError:
        return ""
    deps = model.dependencies()
    layer_names = [
        str(item.get("name"))
        for item in record.document.get("layers") or []
        if isinstance(item, dict)
    ]
    tasks = [GraphTask(t.name, tuple(deps[t.name]), getattr(t, "layer", None)) for t in model.tasks]
    states = {t.name: NodeState(None, str(t.kind)) for t in model.tasks}
    return render_graph(layout_graph(tasks, layer_names), states, title=f"Graph of {model.name}")


def _schema(record: DefinitionRecord) -> dict[str, dict[str, Any]]:
    inputs = record.document.get("inputs") or {}
    return {str(k): dict(v or {}) for k, v in inputs.items()}


@router.get("/ui/definitions", response_class=HTMLResponse, include_in_schema=False)
async def definitions_page(request: Request) -> HTMLResponse:
    store = service_of(request).store
    records = sorted(await store.list_definitions(), key=lambda r: r.name.lower())
    return render(request, "definitions.html", title="Definitions", definitions=records)


@router.get("/ui/definitions/{name}", response_class=HTMLResponse, include_in_schema=False)
async def definition_page(request: Request, name: str) -> HTMLResponse:
    store = service_of(request).store
    wanted = request.query_params.get("version", "")
    record = await store.get_definition(name, int(wanted) if wanted.isdigit() else None)
    versions = await store.definition_versions(name)
    return render(
        request,
        "definition.html",
        title=f"Definition {name}",
        record=record,
        versions=sorted(versions, reverse=True),
        graph=definition_graph(record),
        schema=_schema(record),
    )


@router.get("/ui/start", response_class=HTMLResponse, include_in_schema=False)
async def start_choose(request: Request) -> Response:
    """Pick a definition; with ``?definition=`` go straight to its form."""
    chosen = request.query_params.get("definition", "")
    if chosen:
        return RedirectResponse(f"/ui/start/{quote(chosen, safe='')}", status_code=303)
    store = service_of(request).store
    records = sorted(await store.list_definitions(), key=lambda r: r.name.lower())
    return render(request, "start_choose.html", title="Start a run", definitions=records)


async def _form_page(
    request: Request,
    record: DefinitionRecord,
    submitted: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    versions = await service_of(request).store.definition_versions(record.name)
    return render(
        request,
        "start_form.html",
        status_code=status_code,
        title=f"Start {record.name}",
        record=record,
        versions=sorted(versions, reverse=True),
        fields=build_fields(_schema(record), submitted, errors),
        problem=problem,
        graph=definition_graph(record),
    )


@router.get("/ui/start/{name}", response_class=HTMLResponse, include_in_schema=False)
async def start_form(request: Request, name: str) -> HTMLResponse:
    wanted = request.query_params.get("version", "")
    record = await service_of(request).store.get_definition(
        name, int(wanted) if wanted.isdigit() else None
    )
    return await _form_page(request, record)


@router.post("/ui/start/{name}", include_in_schema=False)
async def start_submit(request: Request, name: str) -> Response:
    """Start the run through the API and land on its page; errors come back on the form."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    version_text = values.pop("__version", "")
    version = int(version_text) if version_text.isdigit() else None
    record = await service_of(request).store.get_definition(name, version)
    inputs, errors = parse_submission(_schema(record), values)
    if errors:
        return await _form_page(
            request, record, values, errors, "Some inputs need fixing.", status_code=422
        )
    answer = await call_api(
        request,
        "POST",
        "/api/v1/runs",
        json={"definition": record.name, "version": record.version, "inputs": inputs},
    )
    if not answer.ok:
        field_errors: dict[str, str] = {}
        for item in answer.error_details or []:
            loc = item.get("loc") if isinstance(item, dict) else None
            if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "inputs":
                field_errors[str(loc[1])] = str(item.get("msg", "is not valid"))
        return await _form_page(
            request,
            record,
            values,
            field_errors,
            answer.error_message,
            status_code=answer.status,
        )
    target = f"/ui/runs/{answer.body['id']}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
