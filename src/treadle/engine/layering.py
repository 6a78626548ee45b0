"""Layers (Igor's model), pure decisions: which layers start, finish, or can never run.

Layers of equal priority run together; a higher priority starts only once every lower layer has
completed or was skipped. An empty layer completes as soon as it starts. A failed or cancelled
layer blocks every higher one, which is then cancelled so the run can end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.model.states import TaskStatus
from treadle.store.records import LayerChange, LayerRecord, TaskChange, TaskRecord

if TYPE_CHECKING:
    from treadle.engine.scheduler import Decision

PENDING, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED = (
    "pending",
    "running",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)
LAYER_TERMINAL = frozenset({COMPLETED, FAILED, SKIPPED, CANCELLED})
LAYER_DONE_OK = frozenset({COMPLETED, SKIPPED})


def plan_layers(
    layers: Sequence[LayerRecord],
    tasks: Sequence[TaskRecord],
    now: datetime,
    decision: Decision,
) -> set[str]:
    """Record layer transitions in ``decision``; return the names open for dispatch."""
    if not layers:
        return set()
    members: dict[str, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        if task.layer and task.parent_id is None:
            members[task.layer].append(task)
    open_layers: set[str] = set()
    blocked: str | None = None
    waiting = False
    for priority in sorted({layer.priority for layer in layers}):
        group = [layer for layer in layers if layer.priority == priority]
        if blocked is not None or waiting:
            if blocked is not None:
                _cancel(group, members, blocked, now, decision)
            continue
        for layer in group:
            status = _step(layer, members[layer.name], now, decision)
            if status == RUNNING and not layer.paused:
                open_layers.add(layer.name)
            if status in (FAILED, CANCELLED):
                blocked = f"layer {layer.name!r} {status}"
            elif status not in LAYER_DONE_OK:
                waiting = True
    return open_layers


def _step(
    layer: LayerRecord, members: Sequence[TaskRecord], now: datetime, decision: Decision
) -> str:
    """Start and/or finish one layer; return its status after this pass."""
    status = layer.status
    values: dict[str, Any] = {}
    if status == PENDING:
        if layer.paused:
            return PENDING
        status = RUNNING
        values.update(status=RUNNING, started_at=now)
        decision.events.append(("layer.started", {"layer": layer.name}))
    if status == RUNNING and all(TaskStatus(t.status).terminal for t in members):
        bad = [
            t
            for t in members
            if t.status == TaskStatus.CANCELLED
            or (t.status == TaskStatus.FAILED and not t.spec.get("allow_failure"))
        ]
        status = FAILED if bad else COMPLETED
        values.update(status=status, finished_at=now)
        if bad:
            values["error"] = f"task {bad[0].name!r} {bad[0].status}"
        decision.events.append((f"layer.{status}", {"layer": layer.name}))
    if values:
        decision.layer_changes.append(LayerChange(layer.id, layer.version, values))
    return status


def _cancel(
    group: Sequence[LayerRecord],
    members: dict[str, list[TaskRecord]],
    reason: str,
    now: datetime,
    decision: Decision,
) -> None:
    for layer in group:
        if layer.status in LAYER_TERMINAL:
            continue
        decision.layer_changes.append(
            LayerChange(
                layer.id,
                layer.version,
                {"status": CANCELLED, "finished_at": now, "error": f"not run: {reason}"},
            )
        )
        for task in members[layer.name]:
            if not TaskStatus(task.status).terminal and task.status != TaskStatus.RUNNING:
                decision.task_changes.append(
                    TaskChange(
                        task.id,
                        task.version,
                        {
                            "status": TaskStatus.CANCELLED.value,
                            "finished_at": now,
                            "settled": True,
                            "error": f"not run: {reason}",
                        },
                    )
                )
