"""The ``subworkflow`` kind: a task that starts a child run and ends when the child does.

The coordinator runs this kind itself (no worker is involved): when the task is dispatched it
starts the child run, labelled with the parent task's id and its nesting depth; when the child
run finishes, the parent task takes its status and output and the parent run is advanced.
"""

from __future__ import annotations

import logging
from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE, Broker
from treadle.engine.runs import RunOptions, create_run
from treadle.errors import TreadleError
from treadle.model.states import RunStatus, TaskStatus
from treadle.observability import tracing
from treadle.store.base import Store
from treadle.store.records import RunRecord, TaskChange, TaskRecord

log = logging.getLogger(__name__)

PARENT_TASK = "parent_task"
DEPTH = "depth"


async def start_child(
    store: Store, broker: Broker, run: RunRecord, task: TaskRecord, rendered: dict[str, Any]
) -> None:
    """Start the child run of ``task`` (already ``running``); fail the task if it cannot."""
    depth = int(run.labels.get(DEPTH, 0)) + 1
    options = RunOptions(
        version=rendered.get("version"),
        labels={PARENT_TASK: task.id, DEPTH: depth},
        actor=f"task {task.name}",
        parent_id=run.id,
    )
    current = await store.get_task(task.id)
    # The child run's trace continues the parent's: its submit span sits under this one.
    attributes = {"treadle.run_id": run.id, "treadle.task_id": task.id, "treadle.task": task.name}
    try:
        with tracing.span(
            "treadle.subworkflow.start", attributes, tracing.run_traceparent(run.labels)
        ):
            child = await create_run(
                store,
                broker,
                str(rendered.get("definition")),
                rendered.get("inputs") or {},
                options,
            )
    except TreadleError as exc:
        await store.update_tasks(
            [
                TaskChange(
                    current.id,
                    current.version,
                    {
                        "status": TaskStatus.FAILED.value,
                        "finished_at": await store.now(),
                        "settled": False,
                        "error": f"cannot start subworkflow: {exc.message}",
                    },
                )
            ]
        )
        await broker.publish(COORDINATOR_QUEUE, [run.id])
        return
    await store.update_tasks(
        [TaskChange(current.id, current.version, {"output": {"run_id": child.id}})]
    )
    await store.add_event(
        run.id, "task.subworkflow_started", "coordinator", {"task": task.name, "run": child.id}
    )


async def child_finished(store: Store, broker: Broker, child: RunRecord) -> None:
    """Hand a finished child run's outcome to the parent task that started it."""
    task_id = child.labels.get(PARENT_TASK)
    if not task_id or child.parent_id is None:
        return
    try:
        task = await store.get_task(str(task_id))
    except TreadleError:
        return
    if task.status != TaskStatus.RUNNING:
        return  # killed or skipped meanwhile
    values: dict[str, Any] = {
        "finished_at": await store.now(),
        "settled": False,
        "output": child.output if child.output is not None else {},
    }
    if child.status == RunStatus.COMPLETED:
        values.update(status=TaskStatus.COMPLETED.value, error=None)
    else:
        values.update(
            status=TaskStatus.FAILED.value,
            error=f"subworkflow run {child.id} {child.status}: {child.error or ''}".strip(),
        )
    won = await store.update_tasks([TaskChange(task.id, task.version, values)])
    if won:
        await broker.publish(COORDINATOR_QUEUE, [child.parent_id])
