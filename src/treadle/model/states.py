"""Run, task and attempt states with their allowed transitions (DESIGN.md §3)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in RUN_TERMINAL


class TaskStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TASK_TERMINAL


class AttemptStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"  # lease expired: the worker vanished or stalled
    CANCELLED = "cancelled"


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
TASK_TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)
# A dependency in one of these states lets its dependants go ahead (all_success rule).
TASK_DONE_OK = frozenset({TaskStatus.COMPLETED, TaskStatus.SKIPPED})

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # COMPLETED from pending / paused: an operator's skip of the whole run.
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLED, RunStatus.COMPLETED}
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PAUSED}
    ),
    RunStatus.PAUSED: frozenset(
        {RunStatus.RUNNING, RunStatus.PENDING, RunStatus.CANCELLED, RunStatus.COMPLETED}
    ),
    # Terminal states leave only through an operator's retry / rerun (back to pending when
    # the run had never started).
    RunStatus.COMPLETED: frozenset({RunStatus.RUNNING, RunStatus.PENDING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.PENDING, RunStatus.COMPLETED}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING, RunStatus.PENDING, RunStatus.COMPLETED}),
}

TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset(
        {
            TaskStatus.QUEUED,
            TaskStatus.PAUSED,
            TaskStatus.SKIPPED,
            TaskStatus.CANCELLED,
            TaskStatus.FAILED,  # template error before dispatch
        }
    ),
    TaskStatus.QUEUED: frozenset(
        {
            TaskStatus.PENDING,  # un-queued by a pause of its run or layer; reset by a rerun
            TaskStatus.RUNNING,
            TaskStatus.PAUSED,
            TaskStatus.CANCELLED,
            TaskStatus.SKIPPED,
            TaskStatus.FAILED,
        }
    ),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # lease lost, delivered again
            TaskStatus.PENDING,  # an operator's rerun (the process is stopped)
            TaskStatus.SKIPPED,  # an operator's skip (the process is stopped)
        }
    ),
    TaskStatus.PAUSED: frozenset(
        {TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.CANCELLED, TaskStatus.SKIPPED}
    ),
    TaskStatus.COMPLETED: frozenset({TaskStatus.PENDING}),  # rerun
    TaskStatus.FAILED: frozenset(
        # RUNNING: a retried fan-out group goes on while its failed children run again
        {TaskStatus.QUEUED, TaskStatus.PENDING, TaskStatus.SKIPPED, TaskStatus.RUNNING}
    ),
    TaskStatus.SKIPPED: frozenset({TaskStatus.PENDING}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.QUEUED, TaskStatus.PENDING, TaskStatus.SKIPPED}),
}


def task_transition_allowed(old: TaskStatus, new: TaskStatus) -> bool:
    """Whether a task may go from ``old`` to ``new``."""
    return new in TASK_TRANSITIONS[old]


def run_transition_allowed(old: RunStatus, new: RunStatus) -> bool:
    """Whether a run may go from ``old`` to ``new``."""
    return new in RUN_TRANSITIONS[old]
