"""Native runs rendered as Tork tasks and jobs (JSON shapes of Tork's API)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from treadle.compat.tork.translate import tork_job_state, tork_state
from treadle.store.records import RunRecord, TaskRecord

LABEL = "tork"
_SECRET_WORDS = ("SECRET", "PASSWORD", "ACCESS_KEY")
_UUID = re.compile(r"^[0-9a-f]{32}$")


def tork_id(native_id: str) -> str:
    """Tork ids are 32 hex characters: a dashed UUID loses its dashes."""
    compact = native_id.replace("-", "")
    return compact if _UUID.match(compact) and len(native_id) == 36 else native_id


def native_ids(given: str) -> list[str]:
    """Native ids a Tork id may stand for (dashes restored first)."""
    text = given.strip().lower()
    if _UUID.match(text):
        return [f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}", given]
    return [given]


def stamp(value: datetime | None) -> str | None:
    """RFC 3339 with a ``Z``, like Go's time.Time JSON."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def redact(env: Any) -> Any:
    """Hide values of variables whose name says they are secret."""
    if not isinstance(env, dict):
        return env
    return {
        k: "[REDACTED]" if any(w in str(k).upper() for w in _SECRET_WORDS) else v
        for k, v in env.items()
    }


def result_text(output: Any) -> str | None:
    """Tork's ``result``: what the task printed (stdout), else its output as JSON."""
    if output is None:
        return None
    if isinstance(output, dict) and isinstance(output.get("stdout"), str):
        return str(output["stdout"])
    if isinstance(output, str):
        return output
    return json.dumps(output)


def _doc_fields(doc: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "name",
        "description",
        "cmd",
        "entrypoint",
        "run",
        "image",
        "queue",
        "pre",
        "post",
        "volumes",
        "networks",
        "retry",
        "limits",
        "timeout",
        "var",
        "if",
        "priority",
    )
    out = {k: doc[k] for k in keep if doc.get(k) is not None}
    if doc.get("env") is not None:
        out["env"] = redact(doc["env"])
    for side in ("pre", "post"):
        if isinstance(out.get(side), list):
            out[side] = [
                {**s, "env": redact(s["env"])} if isinstance(s, dict) and "env" in s else s
                for s in out[side]
            ]
    return out


def single_task_view(run: RunRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
    """A run made by ``POST /task`` as Tork's Task object."""
    label = run.labels.get(LABEL) or {}
    doc = label.get("doc") or {}
    main_name = label.get("main")
    main = next((t for t in tasks if t.name == main_name), tasks[0] if tasks else None)
    view: dict[str, Any] = {"id": tork_id(run.id), **_doc_fields(doc)}
    view["state"] = _single_state(run, tasks, main)
    view["createdAt"] = stamp(run.created_at)
    if main is not None:
        view["scheduledAt"] = stamp(main.queued_at)
    started = [t.started_at for t in tasks if t.started_at is not None]
    view["startedAt"] = stamp(min(started)) if started else None
    if run.status == "completed":
        view["completedAt"] = stamp(run.finished_at)
    if run.status == "failed":
        view["failedAt"] = stamp(run.finished_at)
    if main is not None:
        view["result"] = result_text(main.output)
    error = (main.error if main is not None and main.status == "failed" else None) or (
        run.error if run.status in ("failed", "cancelled") else None
    )
    if error:
        view["error"] = error
    return {k: v for k, v in view.items() if v is not None}


def _single_state(run: RunRecord, tasks: list[TaskRecord], main: TaskRecord | None) -> str:
    if run.status in ("completed", "failed", "cancelled"):
        return tork_job_state(run.status)
    if main is None:
        return "PENDING"
    if main.status in ("completed", "failed", "cancelled", "skipped"):
        return "RUNNING"  # post tasks, or the run's own finish, are still to come
    if main.status == "pending" and any(t.status in ("queued", "running") for t in tasks):
        return "RUNNING"  # a pre task is under way
    if main.status == "pending" and run.status == "running":
        return "SCHEDULED"
    return tork_state(main.status)


def execution_view(run: RunRecord, task: TaskRecord, position: int) -> dict[str, Any]:
    """One native task of a job as Tork's Task object (``GET /tasks/{id}``, ``execution``)."""
    spec = task.rendered or task.spec
    view: dict[str, Any] = {
        "id": tork_id(task.id),
        "jobId": tork_id(run.id),
        "position": position,
        "name": task.name,
        "state": tork_state(task.status),
        "createdAt": stamp(task.created_at),
        "scheduledAt": stamp(task.queued_at),
        "startedAt": stamp(task.started_at),
        "completedAt": stamp(task.finished_at) if task.status == "completed" else None,
        "failedAt": stamp(task.finished_at) if task.status == "failed" else None,
        "queue": task.queue,
        "priority": task.priority or None,
        "result": result_text(task.output),
        "error": task.error,
        "image": spec.get("image") or (spec.get("args") or {}).get("image"),
        "cmd": spec.get("cmd"),
        "run": spec.get("command") if spec.get("shell") else spec.get("run"),
        "env": redact(spec.get("env")) or None,
    }
    if spec.get("kind") == "shell" and not spec.get("shell"):
        view["cmd"] = spec.get("command")
    if task.attempt_count > 1:
        view["retry"] = {"attempts": task.attempt_count - 1}
    return {k: v for k, v in view.items() if v is not None}


def job_summary(run: RunRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
    """Tork's JobSummary."""
    label = run.labels.get(LABEL) or {}
    doc = label.get("doc") or {}
    view: dict[str, Any] = {
        "id": tork_id(run.id),
        "name": doc.get("name", run.definition_name),
        "description": doc.get("description"),
        "state": tork_job_state(run.status),
        "createdAt": stamp(run.created_at),
        "startedAt": stamp(run.started_at),
        "completedAt": stamp(run.finished_at) if run.status == "completed" else None,
        "failedAt": stamp(run.finished_at) if run.status == "failed" else None,
        "position": job_position(tasks),
        "taskCount": len(tasks),
        "inputs": run.inputs or None,
        "error": run.error if run.status in ("failed", "cancelled") else None,
    }
    return {k: v for k, v in view.items() if v is not None or k == "position"}


def job_view(run: RunRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
    """Tork's full Job: its input tasks, the execution so far and the results by ``var``."""
    label = run.labels.get(LABEL) or {}
    doc = label.get("doc") or {}
    view = job_summary(run, tasks)
    view["tasks"] = [_doc_fields(t) for t in doc.get("tasks", []) if isinstance(t, dict)]
    view["execution"] = [execution_view(run, t, t.seq + 1) for t in tasks if t.status != "pending"]
    results: dict[str, Any] = {}
    names = label.get("vars") or {}
    by_name = {t.name: t for t in tasks}
    for var, name in names.items():
        task = by_name.get(name)
        if task is not None and task.status == "completed":
            results[var] = result_text(task.output)
    view["context"] = {"inputs": run.inputs, "tasks": results}
    return view


def job_position(tasks: list[TaskRecord]) -> int:
    """1-based position of the first task that has not finished (past the end when done)."""
    for task in sorted(tasks, key=lambda t: t.seq):
        if task.status not in ("completed", "skipped"):
            return task.seq + 1
    return len(tasks) + 1 if tasks else 0
