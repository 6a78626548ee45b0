"""The v1 API as request descriptions, shared by :class:`Client` and :class:`AsyncClient`.

Each function returns a :class:`Call`: method, path, body and how to turn the JSON answer into
a typed value. The two clients only differ in how they send it (blocking or awaited).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from treadle.sdk.models import (
    Definition,
    DefinitionRef,
    Event,
    Page,
    Run,
    Schedule,
    Worker,
)

T = TypeVar("T")

Target = Literal["runs", "layers", "tasks"]
Operation = Literal["pause", "unpause", "kill", "retry", "skip", "rerun"]
OPERATIONS: tuple[str, ...] = ("pause", "unpause", "kill", "retry", "skip", "rerun")
BULK_KINDS = {"run": "run", "layer": "layer", "task": "task", "job": "run"}


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and the parser of its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def seg(value: str) -> str:
    """One path segment, escaped (task names may hold spaces)."""
    return quote(str(value), safe="")


def _ident(value: Any) -> str:
    return str(getattr(value, "id", value))


def if_match(obj: Any, etag: str | int | None) -> dict[str, str]:
    """The If-Match header: the given etag, else the etag the object carries, else none."""
    tag = etag if etag is not None else getattr(obj, "etag", None)
    return {} if tag is None else {"If-Match": f'"{tag}"'}


def _items(parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], Page[T]]:
    def parse_page(data: Any) -> Page[T]:
        return Page(tuple(parse(item) for item in data["items"]), data.get("next_cursor"))

    return parse_page


def _identity(data: Any) -> Any:
    return data


# -- definitions ---------------------------------------------------------------------------
def definition_body(doc: Any) -> tuple[bytes, str]:
    """Bytes and content type for a dict, a YAML/JSON text, a file path or a code-first workflow."""
    to_document = getattr(doc, "to_document", None)
    if callable(to_document):
        doc = to_document()
    if isinstance(doc, Path):
        text = doc.read_text()
        kind = "application/json" if doc.suffix.lower() == ".json" else "application/yaml"
        return text.encode(), kind
    if isinstance(doc, Mapping):
        return json.dumps(doc).encode(), "application/json"
    if isinstance(doc, str | bytes):
        raw = doc.encode() if isinstance(doc, str) else doc
        kind = "application/json" if raw.lstrip().startswith(b"{") else "application/yaml"
        return raw, kind
    raise TypeError(f"cannot send a definition of type {type(doc).__name__}")


def create_definition(doc: Any, dialect: str | None = None) -> Call[DefinitionRef]:
    body, kind = definition_body(doc)
    return Call(
        "POST",
        "/api/v1/definitions",
        DefinitionRef.from_json,
        params={"dialect": dialect} if dialect else {},
        content=body,
        headers={"Content-Type": kind},
    )


def get_definition(name: str, version: int | None = None) -> Call[Definition]:
    params = {"version": version} if version is not None else {}
    return Call("GET", f"/api/v1/definitions/{seg(name)}", Definition.from_json, params=params)


def list_definitions() -> Call[Page[Definition]]:
    return Call("GET", "/api/v1/definitions", _items(Definition.from_json))


def definition_schema() -> Call[dict[str, Any]]:
    return Call("GET", "/api/v1/schema/definition", _identity)


# -- runs ----------------------------------------------------------------------------------
def create_run(
    definition: Any,
    inputs: Mapping[str, Any] | None,
    version: int | None,
    labels: Mapping[str, Any] | None,
) -> Call[Run]:
    to_document = getattr(definition, "to_document", None)
    if callable(to_document):
        definition = to_document()
    if isinstance(definition, Path):
        from treadle.model.parse import load_document

        definition = load_document(definition.read_text())
    body: dict[str, Any] = {"definition": definition, "inputs": dict(inputs or {})}
    if version is not None:
        body["version"] = version
    if labels:
        body["labels"] = dict(labels)
    return Call("POST", "/api/v1/runs", Run.from_json, json=body)


def get_run(run: Any) -> Call[Run]:
    return Call("GET", f"/api/v1/runs/{seg(_ident(run))}", Run.from_json)


def list_runs(
    status: str | None = None,
    definition: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Call[Page[Run]]:
    params = {"status": status, "definition": definition, "limit": limit, "cursor": cursor}
    return Call(
        "GET",
        "/api/v1/runs",
        _items(Run.from_json),
        params={k: v for k, v in params.items() if v is not None},
    )


def run_events(run: Any) -> Call[list[Event]]:
    return Call(
        "GET",
        f"/api/v1/runs/{seg(_ident(run))}/events",
        lambda data: [Event.from_json(e) for e in data["items"]],
    )


def cancel_run(run: Any, etag: str | int | None = None) -> Call[Run]:
    return Call(
        "POST",
        f"/api/v1/runs/{seg(_ident(run))}/cancel",
        Run.from_json,
        headers=if_match(run, etag),
    )


def logs_path(run: Any, task: str) -> str:
    return f"/api/v1/runs/{seg(_ident(run))}/tasks/{seg(task)}/logs"


def signal(run: Any, name: str, payload: Any = None) -> Call[Any]:
    return Call(
        "POST",
        f"/api/v1/runs/{seg(_ident(run))}/signals/{seg(name)}",
        _identity,
        json={} if payload is None else payload,
    )


# -- control operations --------------------------------------------------------------------
def control(target: Target, obj: Any, op: str, etag: str | int | None = None) -> Call[Any]:
    """``POST /api/v1/{runs|layers|tasks}/{id}/{op}`` with ``If-Match``."""
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}; use one of {', '.join(OPERATIONS)}")
    return Call(
        "POST",
        f"/api/v1/{target}/{seg(_ident(obj))}/{op}",
        _identity,
        headers=if_match(obj, etag),
    )


def bulk(op: str, items: Sequence[Any]) -> Call[int]:
    """``PATCH /api/v1/{op}`` with ``[{"kind", "id", "etag"}]``; answers the count applied."""
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}; use one of {', '.join(OPERATIONS)}")
    body = [_bulk_item(item) for item in items]
    return Call("PATCH", f"/api/v1/{op}", lambda data: int(data["count"]), json=body)


def _bulk_item(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        kind = str(item["kind"]).lower()
        return {"kind": BULK_KINDS.get(kind, kind), "id": str(item["id"]), "etag": item.get("etag")}
    if isinstance(item, tuple) and len(item) in (2, 3):
        kind, ident, *rest = item
        return {"kind": kind, "id": str(ident), "etag": rest[0] if rest else None}
    from treadle.sdk.models import Run, Task

    if isinstance(item, Run | Task):
        kind = "run" if isinstance(item, Run) else "task"
        return {"kind": kind, "id": item.id, "etag": item.etag}
    raise TypeError(f"a bulk item is a Run, a Task, a mapping or (kind, id, etag), not {item!r}")


# -- schedules, workers, system --------------------------------------------------------------
def create_schedule(
    definition: str,
    cron: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    name: str | None = None,
    overlap: str | None = None,
    catchup: str | None = None,
    paused: bool | None = None,
) -> Call[Schedule]:
    body: dict[str, Any] = {"definition": definition, "cron": cron, "inputs": dict(inputs or {})}
    extra = {
        "timezone": timezone,
        "name": name,
        "overlap": overlap,
        "catchup": catchup,
        "paused": paused,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return Call("POST", "/api/v1/schedules", Schedule.from_json, json=body)


def list_schedules() -> Call[Page[Schedule]]:
    return Call("GET", "/api/v1/schedules", _items(Schedule.from_json))


def get_schedule(schedule_id: str) -> Call[Schedule]:
    return Call("GET", f"/api/v1/schedules/{seg(schedule_id)}", Schedule.from_json)


def delete_schedule(schedule_id: str) -> Call[None]:
    return Call("DELETE", f"/api/v1/schedules/{seg(schedule_id)}", lambda _: None)


def list_workers() -> Call[list[Worker]]:
    return Call("GET", "/api/v1/workers", lambda data: [Worker.from_json(w) for w in data["items"]])


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", _identity)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _identity)
