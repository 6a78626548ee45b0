"""A treadle run rendered as a Mender workflows job document."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from treadle.store.records import RunRecord, TaskRecord

JOB_STATUS = {
    "pending": "pending",
    "running": "processing",
    "paused": "processing",
    "completed": "done",
    "failed": "failed",
    "cancelled": "failed",
}
_KIND_TYPES = {"http": "http", "shell": "cli"}


def as_text(value: Any) -> str:
    """Mender's text form of an input: strings as they are, arrays comma-joined, else JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(as_text(v) for v in value)
    return json.dumps(value)


def input_parameters(given: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": as_text(v)} for k, v in given.items()]


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _http_result(task: TaskRecord, spec: Mapping[str, Any]) -> dict[str, Any]:
    body = spec.get("body")
    if body is None and spec.get("json") is not None:
        body = json.dumps(spec["json"])
    headers = spec.get("headers") or {}
    output = task.output if isinstance(task.output, dict) else {}
    return {
        "httpRequest": {
            "uri": spec.get("url", ""),
            "method": spec.get("method", "GET"),
            "body": body or "",
            "headers": [f"{k}: {v}" for k, v in headers.items()],
        },
        "httpResponse": {
            "statusCode": output.get("status", 0),
            "body": output.get("body", ""),
        },
    }


def _cli_result(task: TaskRecord, spec: Mapping[str, Any]) -> dict[str, Any]:
    output = task.output if isinstance(task.output, dict) else {}
    exit_code = output.get("exit_code")
    return {
        "cli": {
            "command": list(spec.get("command") or []),
            "output": output.get("stdout", ""),
            "error": output.get("stderr", ""),
            "exitCode": -1 if exit_code is None else exit_code,
        }
    }


def task_result(task: TaskRecord) -> dict[str, Any]:
    """One entry of ``results``: the request as sent and the response (or CLI output)."""
    spec = task.rendered or task.spec
    kind = str(spec.get("kind", ""))
    result: dict[str, Any] = {
        "name": task.name,
        "type": _KIND_TYPES.get(kind, kind),
        "success": task.status in ("completed", "skipped"),
        "skipped": task.status == "skipped",
    }
    if task.status == "skipped":
        return result
    if kind == "http":
        result.update(_http_result(task, spec))
    elif kind == "shell":
        result.update(_cli_result(task, spec))
    if task.status == "failed" and task.error:
        result["error"] = task.error
    return result


def finished_in_order(tasks: Iterable[TaskRecord]) -> list[TaskRecord]:
    """Tasks that ran (or were skipped by ``requires``), stopping at the first failure."""
    result = []
    for task in sorted(tasks, key=lambda t: t.seq):
        if task.status not in ("completed", "failed", "skipped"):
            break
        result.append(task)
        if task.status == "failed":
            break
    return result


def job_document(
    run: RunRecord, tasks: list[TaskRecord], given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The job as ``GET /api/workflow/{name}/{id}`` returns it."""
    results = [task_result(t) for t in finished_in_order(tasks)]
    return {
        "id": run.id,
        "workflowName": run.definition_name,
        "inputParameters": input_parameters(given if given is not None else run.inputs),
        "status": JOB_STATUS.get(run.status, "unknown"),
        "results": results or None,
        "insert_time": _time(run.created_at),
        "version": str(run.definition_version),
    }
