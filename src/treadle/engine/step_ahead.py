"""Deciding a chain's next step before its report is stored (``store/stepping.py``).

A worker that advances its own runs knows, when its copy says the task it just finished was
the run's only open one, everything the pass after the report would read: the copy, and the
outcome in hand. The pass is decided on the copy with that outcome applied; when it is a
chain's step (it settles the reported task and queues one task, nothing else), the store
records the report and applies the step in one call, guarded by the copy's fingerprint.
Anything else (the run's last step, a fan-out, a run change) goes the ordinary way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from treadle.engine.run_state import RunState
from treadle.engine.scheduler import Decision
from treadle.model.states import AttemptStatus, RunStatus, TaskStatus
from treadle.store.delta import ACTIVE_STATUSES
from treadle.store.records import AttemptOutcome, TaskChange, TaskRecord
from treadle.store.stepping import RunFingerprint


@dataclass(frozen=True, slots=True)
class StepPlan:
    """A chain's step decided ahead of its report, for one copy of the run."""

    state: RunState
    #: Passes the copy had made when the step was decided (the step is the next one).
    passes: int
    expected: RunFingerprint
    #: The reported task as the copy will hold it once the report is stored.
    reported: TaskRecord
    #: The compare-and-set queueing the next task, and that task.
    change: TaskChange
    queued: TaskRecord
    now: datetime

    @property
    def run_id(self) -> str:
        return self.expected.run_id


def may_step(state: RunState, outcome: AttemptOutcome) -> bool:
    """Whether the copy can decide the pass after this report: the attempt completed, its
    task is a top-level task and the only open one of a running run without layers."""
    task = state.tasks.get(outcome.task_id)
    return (
        task is not None
        and task.parent_id is None
        and task.status in ACTIVE_STATUSES
        and state.open_total == 1
        and not state.has_layers
        and state.run.status == RunStatus.RUNNING.value
        and outcome.attempt_status == AttemptStatus.COMPLETED.value
        and outcome.task_status == TaskStatus.COMPLETED.value
    )


def finished(task: TaskRecord, outcome: AttemptOutcome, output: Any, now: datetime) -> TaskRecord:
    """``task`` as a read after storing ``outcome`` (with ``output`` as stored) shows it; its
    version is the copy's guess, replaced by the store's once the report is in."""
    return dataclasses.replace(
        task,
        status=outcome.task_status,
        output=output,
        error=outcome.error,
        finished_at=now,
        settled=False,
        version=task.version + 1,
    )


def chain_step(decision: Decision, reported_id: str) -> TaskChange | None:
    """The decision's only write when it is a chain's step: it settles the reported task
    and queues one task, and does nothing else. None for any other decision."""
    if (
        decision.run_values
        or decision.events
        or decision.expansions
        or decision.subworkflows
        or decision.kills
        or decision.groups_done
        or decision.layer_changes
        or list(decision.settled) != [reported_id]
        or len(decision.task_changes) != 1
        or len(decision.queued) != 1
    ):
        return None
    (change,) = decision.task_changes
    if (
        change.task_id != decision.queued[0].id
        or change.values.get("status") != TaskStatus.QUEUED.value
    ):
        return None
    return change


def fingerprint(state: RunState) -> RunFingerprint:
    """How the copy knows its run (the guard of the step's store call)."""
    return RunFingerprint(state.run.id, state.run.version, len(state.tasks), state.version_sum)
