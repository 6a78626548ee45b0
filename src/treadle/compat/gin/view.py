"""A treadle run rendered as gin's runner document (what ``GET /wf/{uuid}`` returns)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from treadle.compat.gin.translate import WEB_TYPES, GinStep, GinWorkflow
from treadle.store.records import RunRecord, TaskRecord

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# Structural native fields that are not part of a step's context.
_NOT_CONTEXT = {"name", "kind", "depends_on", "description", "outputs", "if", "trigger_rule"}
_NOT_CONTEXT |= {"allow_failure", "retry", "queue", "priority", "timeout", "env"}

RUN_STATES = {
    "pending": "started",
    "running": "running",
    "paused": "running",
    "completed": "ended",
    "failed": "failed",
    "cancelled": "failed",
}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def go_time(value: datetime | None) -> str:
    """Go's RFC3339Nano (fraction without trailing zeros, ``Z``); the zero time for None."""
    if value is None:
        return GO_ZERO_TIME
    moment = _utc(value)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def step_time(value: datetime | None) -> str:
    """gin's step timestamps: ``2006-01-02T15:04:05`` (here always UTC)."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S") if value else ""


def workflow_from_native(document: Mapping[str, Any]) -> GinWorkflow:
    """A gin view of a definition that was not written in gin."""
    steps = []
    for task in document.get("tasks", []):
        kind = str(task.get("kind", ""))
        step_type = str(task.get("handler", kind)) if kind == "python" else kind
        context = task.get("args", {}) if kind == "python" else task
        steps.append(
            GinStep(
                str(task.get("name", "")),
                step_type,
                {str(k): _as_text(v) for k, v in context.items() if k not in _NOT_CONTEXT},
                "",
            )
        )
    variables = {str(k): _as_text(v) for k, v in (document.get("vars") or {}).items()}
    return GinWorkflow(str(document.get("name", "")), variables, steps)


def _as_text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def compiled_context(step: GinStep, rendered: Mapping[str, Any]) -> dict[str, str]:
    """The step's context after compilation, read back from the rendered native task."""
    context = dict(step.context)
    if step.type in WEB_TYPES:
        context["url"] = _as_text(rendered.get("url", ""))
        if "content-type" in context:
            context["content-type"] = _as_text(
                (rendered.get("headers") or {}).get("Content-Type", "")
            )
        if "data" in context:
            context["data"] = _as_text(rendered.get("body") or "")
    elif step.type == "log" and rendered.get("kind") == "log":
        context["message"] = _as_text(rendered.get("message", ""))
    elif rendered.get("kind") == "python":
        context.update({str(k): _as_text(v) for k, v in (rendered.get("args") or {}).items()})
    else:
        context.update({str(k): _as_text(v) for k, v in rendered.items() if k in step.context})
    return context


def step_data(step: GinStep, task: TaskRecord) -> dict[str, Any] | None:
    """gin's ``Data`` of a finished step: its output object (web steps: the JSON body)."""
    if task.status != "completed" or not isinstance(task.output, dict):
        return None
    if step.type == "log":
        return None
    data = task.output.get("json") if step.type in WEB_TYPES else task.output
    return data if isinstance(data, dict) else None


def _dispatched(task: TaskRecord | None) -> bool:
    return task is not None and (task.rendered is not None or task.started_at is not None)


def _step_view(step: GinStep, task: TaskRecord | None, run_id: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "Context": dict(step.context),
        "Duration": "",
        "End": "",
        "ErrorMessage": "",
        "Failed": False,
        "Name": step.name,
        "Register": step.register,
        "Start": "",
        "Type": step.type,
        "UUID": "",
    }
    if task is None or not _dispatched(task):
        return view
    if task.rendered is not None:
        view["Context"] = compiled_context(step, task.rendered)
    view["UUID"] = run_id
    view["Start"] = step_time(task.started_at)
    view["End"] = step_time(task.finished_at)
    if task.started_at and task.finished_at:
        millis = int((task.finished_at - task.started_at).total_seconds() * 1000)
        view["Duration"] = f"{millis} ms"
    if task.status == "failed":
        view["Failed"] = True
        view["ErrorMessage"] = task.error or "failed"
    return view


def runner_document(
    run: RunRecord,
    tasks: list[TaskRecord],
    workflow: GinWorkflow,
    runtime: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """gin's Runner JSON for ``run``."""
    by_name = {t.name: t for t in tasks}
    variables: dict[str, Any] = {"Defaults": dict(workflow.variables)}
    if runtime is not None:
        variables["Runtime"] = dict(runtime)
    last = ""
    failed_step = ""
    for step in workflow.steps:
        task = by_name.get(step.name)
        if task is None or not _dispatched(task):
            continue
        last = step.name
        if task.status == "failed" and not failed_step:
            failed_step = step.name
        data = step_data(step, task)
        if step.register and data is not None:
            variables[step.register] = data
    state = RUN_STATES.get(run.status, run.status)
    error = ""
    if state == "failed":
        error = f'Step "{failed_step}" failed. See below' if failed_step else (run.error or "")
    return {
        "EndTime": go_time(run.finished_at),
        "ErrorMessage": error,
        "Last": last,
        "StartTime": go_time(run.started_at or run.created_at),
        "State": state,
        "UUID": run.id,
        "Variables": variables,
        "Workflow": {
            "Name": workflow.name,
            "Steps": [_step_view(s, by_name.get(s.name), run.id) for s in workflow.steps],
            "Variables": dict(workflow.variables),
        },
    }
