"""A new run's first scheduling pass, made as the run is written.

Nobody has seen a run that is being created, so its first pass is a function of its own rows:
the scheduler starts the run and queues the tasks whose dependencies allow it. When that is
all the pass does, its result is written with the run (one statement on PostgreSQL) and the
tasks' doorbells ring at once, instead of the run waiting, pending, for a coordinator to read
it back and make the same decision. Anything beyond that — a concurrency limit, layers, a
fan-out, a sub-workflow, a wait, a rate-limited queue, a task skipped or failed by its
templates — leaves the run pending for a coordinator, exactly as before.

The rows are written as that pass would have left them, versions included: the run and each
queued task one version past the pending rows nobody got to see, so an etag taken from the
pending run does not match the started one, as when a coordinator had started it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from treadle.engine.extensions import rung_at_once
from treadle.engine.limits import run_scopes
from treadle.engine.scheduler import decide
from treadle.errors import TemplateError
from treadle.model.states import RunStatus
from treadle.store.records import LayerRecord, RunRecord, TaskRecord

#: Who the first pass's events are recorded as (the same pass a coordinator would make).
ACTOR = "coordinator"


@dataclass(frozen=True, slots=True)
class FirstPass:
    """The run and its tasks as the first pass leaves them, and what it recorded."""

    run: RunRecord
    tasks: list[TaskRecord]
    events: list[tuple[str, str, dict[str, Any]]]
    queued: list[TaskRecord]


def first_pass(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    layers: Sequence[LayerRecord],
    now: datetime,
    queue_rates: Mapping[str, float],
) -> FirstPass | None:
    """The first pass of a run being created, or None when a coordinator must make it."""
    if run.status != RunStatus.PENDING or layers:
        return None
    try:
        if run_scopes(run):
            return None  # admission asks the store for a slot, in order: the coordinator's job
    except TemplateError:
        return None  # the coordinator fails the run and says why
    decision = decide(run, tasks, now)
    if (
        not decision.queued
        or decision.expansions
        or decision.subworkflows
        or decision.layer_changes
        or decision.kills
        or decision.groups_done
    ):
        return None
    queued_ids = {task.id for task in decision.queued}
    if any(change.task_id not in queued_ids for change in decision.task_changes):
        return None  # skipped or failed tasks: the next passes follow from there
    if not all(rung_at_once(task, queue_rates) for task in decision.queued):
        return None  # parked or paced before any doorbell
    values = {change.task_id: change.values for change in decision.task_changes}
    new_tasks = [
        dataclasses.replace(task, **values[task.id], version=task.version + 1)
        if task.id in values
        else task
        for task in tasks
    ]
    return FirstPass(
        run=dataclasses.replace(run, **(decision.run_values or {}), version=run.version + 1),
        tasks=new_tasks,
        events=[(kind, ACTOR, detail) for kind, detail in decision.events],
        queued=[task for task in new_tasks if task.id in queued_ids],
    )
