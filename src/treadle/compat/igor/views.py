"""Igor's JSON shapes (Job, Layer, Task) built from native records.

Times are unix seconds; ``paused_at`` is when the object was paused (0 when it is not);
etags are the native row versions as text (upstream uses random UUIDs, compared the same way).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from treadle.store.records import EventRecord, LayerRecord, RunRecord, TaskRecord

_RUN = {"pending": "PENDING", "completed": "COMPLETED", "failed": "ERRORED", "cancelled": "ERRORED"}
_LAYER = {
    "pending": "PENDING",
    "running": "RUNNING",
    "completed": "COMPLETED",
    "failed": "ERRORED",
    "skipped": "SKIPPED",
    "cancelled": "ERRORED",
}
_TASK = {**_LAYER, "paused": "PENDING", "queued": "QUEUED"}
STATUSES = ("PENDING", "QUEUED", "RUNNING", "COMPLETED", "ERRORED", "SKIPPED")


def run_status(status: str) -> str:
    """A run's Igor status: paused or running runs still have work, so RUNNING."""
    return _RUN.get(status, "RUNNING")


def layer_status(status: str) -> str:
    return _LAYER.get(status, "RUNNING")


def task_status(status: str) -> str:
    """Killed (cancelled) and failed tasks are both ERRORED, as Igor's README says."""
    return _TASK.get(status, "RUNNING")


def _unix(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def _updated(*values: datetime | None) -> int:
    return max(_unix(v) for v in values)


def pause_times(events: list[EventRecord]) -> dict[str, int]:
    """Object id -> unix time of its latest pause that no later unpause undid."""
    paused: dict[str, int] = {}
    for event in events:
        target = str(event.detail.get("id", ""))
        if event.kind.endswith(".pause"):
            paused[target] = _unix(event.at)
        elif event.kind.endswith(".unpause"):
            paused.pop(target, None)
    return paused


class JobContext:
    """One run's records, read once, to render its job, layers and tasks."""

    def __init__(
        self,
        run: RunRecord,
        layers: list[LayerRecord],
        tasks: list[TaskRecord],
        events: list[EventRecord],
    ) -> None:
        self.run = run
        self.layers = layers
        self.tasks = [t for t in tasks if t.parent_id is None]
        self.layer_ids = {layer.name: layer.id for layer in layers}
        self.paused = pause_times(events)
        self.names: dict[str, str] = dict((run.labels.get("igor") or {}).get("layers") or {})

    def job(self) -> dict[str, Any]:
        run = self.run
        return {
            "name": str((run.labels.get("igor") or {}).get("name", run.definition_name)),
            "id": run.id,
            "status": run_status(run.status),
            "etag": str(run.version),
            "created_at": _unix(run.created_at),
            "updated_at": _updated(run.created_at, run.started_at, run.finished_at),
        }

    def layer(self, layer: LayerRecord) -> dict[str, Any]:
        paused_at = self.paused.get(layer.id, _unix(layer.created_at)) if layer.paused else 0
        return {
            "name": self.names.get(layer.name, layer.name),
            "paused_at": paused_at,
            "priority": layer.priority,
            "id": layer.id,
            "status": layer_status(layer.status),
            "etag": str(layer.version),
            "job_id": self.run.id,
            "created_at": _unix(layer.created_at),
            "updated_at": _updated(layer.created_at, layer.started_at, layer.finished_at),
        }

    def task(self, task: TaskRecord) -> dict[str, Any]:
        spec = task.spec
        retry = spec.get("retry") or {}
        paused = task.status == "paused"
        output = task.output if isinstance(task.output, dict) else {}
        return {
            "type": str(spec.get("handler", spec.get("kind", ""))),
            "args": str((spec.get("args") or {}).get("args", "")),
            "name": str(spec.get("description", task.name)),
            "paused_at": self.paused.get(task.id, _unix(task.created_at)) if paused else 0,
            "retries": max(int(retry.get("max_attempts", 1)) - 1, 0),
            "id": task.id,
            "status": "SKIPPED" if output.get("status") == "skipped" else task_status(task.status),
            "etag": str(task.version),
            "job_id": task.run_id,
            "layer_id": self.layer_ids.get(task.layer or "", ""),
            "created_at": _unix(task.created_at),
            "updated_at": _updated(
                task.created_at, task.queued_at, task.started_at, task.finished_at
            ),
            "queue_task_id": task.attempt_id or "",
            "message": str(task.error or output.get("message") or ""),
        }

    def layer_tasks(self, layer: LayerRecord) -> list[dict[str, Any]]:
        return [self.task(t) for t in self.tasks if t.layer == layer.name]

    def created(self) -> dict[str, Any]:
        """CreateJobResponse: the job with its layers, each with its tasks."""
        return {
            **self.job(),
            "layers": [{**self.layer(la), "tasks": self.layer_tasks(la)} for la in self.layers],
        }
