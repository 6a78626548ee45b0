"""JSON shapes of the native API (DESIGN.md §1, pinned names)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from treadle.store.records import (
    AttemptRecord,
    DefinitionRecord,
    EventRecord,
    RunRecord,
    TaskRecord,
    WorkerRecord,
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def etag(version: int) -> str:
    return str(version)


def parse_etag(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    try:
        return int(text)
    except ValueError:
        return -1  # never matches: a malformed etag is a stale etag


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 6)


def attempt_view(a: AttemptRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "number": a.number,
        "status": a.status,
        "worker_id": a.worker_id,
        "started_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
        "lease_expires_at": iso(a.lease_expires_at),
        "duration": _duration(a.started_at, a.finished_at),
        "output": a.output,
        "error": a.error,
    }


def task_view(t: TaskRecord, attempts: list[AttemptRecord]) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "kind": t.spec.get("kind"),
        "status": t.status,
        "depends_on": t.depends_on,
        "queue": t.queue,
        "priority": t.priority,
        "layer": t.layer,
        "output": t.output,
        "error": t.error,
        "etag": etag(t.version),
        "rendered": t.rendered,
        "created_at": iso(t.created_at),
        "queued_at": iso(t.queued_at),
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "duration": _duration(t.started_at, t.finished_at),
        "attempt_count": t.attempt_count,
        "attempts": [attempt_view(a) for a in attempts],
    }


def run_summary(r: RunRecord, counts: dict[str, int] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r.id,
        "definition": r.definition_name,
        "version": r.definition_version,
        "status": r.status,
        "inputs": r.inputs,
        "created_at": iso(r.created_at),
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "duration": _duration(r.started_at, r.finished_at),
        "error": r.error,
        "etag": etag(r.version),
        "dialect": r.dialect,
        "parent_id": r.parent_id,
        "output": r.output,
    }
    if counts is not None:
        view["progress"] = counts
    return view


def run_view(
    r: RunRecord, tasks: list[TaskRecord], attempts: list[AttemptRecord]
) -> dict[str, Any]:
    by_task: dict[str, list[AttemptRecord]] = defaultdict(list)
    for attempt in attempts:
        by_task[attempt.task_id].append(attempt)
    counts: dict[str, int] = defaultdict(int)
    for task in tasks:
        counts[task.status] += 1
    view = run_summary(r, {"total": len(tasks), **counts})
    view["tasks"] = [task_view(t, by_task.get(t.id, [])) for t in tasks]
    return view


def definition_view(d: DefinitionRecord, with_source: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": d.name,
        "version": d.version,
        "dialect": d.dialect,
        "created_at": iso(d.created_at),
        "description": d.document.get("description"),
        "inputs": d.document.get("inputs", {}),
    }
    if with_source:
        view["document"] = d.document
        view["source"] = d.source
    return view


def event_view(e: EventRecord) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail}


def worker_view(w: WorkerRecord, now: datetime, lost_after: float) -> dict[str, Any]:
    status = w.status
    if status == "alive" and (now - w.last_seen).total_seconds() > lost_after:
        status = "lost"
    return {
        "id": w.id,
        "host": w.host,
        "queues": w.queues,
        "in_flight": w.in_flight,
        "status": status,
        "started_at": iso(w.started_at),
        "last_seen": iso(w.last_seen),
        "capabilities": w.capabilities,
    }
