"""A chain's step in one atomic store call: the report of a run's only open task, and the
pass that follows it, decided ahead on the advancing process's copy of the run.

A worker that advances the runs it reports (worker.py) used to make two calls per step of a
chain: the report (with the next pass's read), then the pass's write claiming the next task.
When its copy of the run says the reported task was the run's only open one, the pass can be
decided before the report, as if the report had been read back. The store then records the
report and, only if the run is still as the copy knew it (its row's version, its task count
and version sum as :mod:`treadle.store.delta` counts them), applies the pass's write and claims
the task it queues, all in one statement. If the run moved meanwhile, the report is recorded
as any other (unsettled) and the caller makes an ordinary pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from treadle.store.records import AttemptOutcome, AttemptRecord, TaskChange, TaskRecord


@dataclass(frozen=True, slots=True)
class RunFingerprint:
    """How the caller's copy knows a run: the run row's version, and its task rows' count
    and version sum (:attr:`treadle.store.delta.RunDelta.version_sum`)."""

    run_id: str
    run_version: int
    task_count: int
    version_sum: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """What :meth:`SteppingStore.finish_and_step` did."""

    #: The reported attempt's id when the report was accepted (as ``finish_attempts``).
    accepted: list[str]
    #: Whether the pass's write was applied: the report was accepted and the run matched.
    stepped: bool
    #: The reported task's version after the report (None when it was not accepted).
    reported_version: int | None
    #: The queued task, claimed (empty when not stepped or its compare-and-set lost).
    claimed: list[tuple[TaskRecord, AttemptRecord]]


@runtime_checkable
class SteppingStore(Protocol):
    """A store that records a report and applies the step decided ahead of it at once."""

    def as_stored(self, value: Any) -> Any:
        """``value`` (an output) as a read of it after storing returns it."""
        ...

    async def finish_and_step(
        self,
        outcome: AttemptOutcome,
        expected: RunFingerprint,
        change: TaskChange,
        worker_id: str,
        lease_seconds: float,
        now: datetime,
    ) -> StepResult:
        """Record ``outcome`` (a completed attempt) as ``finish_attempts`` does, at ``now``.
        If it was accepted and the run still matched ``expected`` before it, in the same
        atomic step: mark the reported task settled, apply ``change`` (a compare-and-set
        that queues a task) and claim that task for ``worker_id`` as ``Store.claim`` does."""
        ...
