"""The coordinator's per-pass reads and write for several runs at once.

Stores that can do them in a few statements implement :class:`BatchPassStore`; for the others
:func:`load_run_deltas`, :func:`get_tasks_many` and :func:`apply_decisions` call the one-run
methods in turn, so every store gives the same answers either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from treadle.errors import NotFound
from treadle.store.base import Store
from treadle.store.delta import RunDelta, load_run_delta
from treadle.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DecisionWrite,
    RunRecord,
    TaskRecord,
)

#: What :meth:`Store.apply_decision` returns: the task ids whose compare-and-set won, and the
#: run as updated when its own compare-and-set won.
Applied = tuple[list[str], RunRecord | None]


@runtime_checkable
class BatchPassStore(Protocol):
    """A store that reads and writes the passes of many runs in one transaction each."""

    async def load_run_deltas(
        self, requests: Sequence[tuple[str, bool]]
    ) -> list[RunDelta | NotFound]:
        """For each ``(run_id, with_layers)``, what ``load_run_delta`` would return, or the
        :class:`NotFound` it would raise, in the order asked."""
        ...

    async def get_tasks_many(self, run_ids: Sequence[str]) -> list[list[TaskRecord]]:
        """For each run id, what ``get_tasks`` would return (an unknown run has no tasks)."""
        ...

    async def apply_decisions(self, writes: Sequence[DecisionWrite]) -> list[Applied]:
        """Each write as ``apply_decision`` would apply it, all in one transaction; the
        writes must concern different runs (one pass per run at a time)."""
        ...


@runtime_checkable
class ClaimingPassStore(Protocol):
    """A store that can write a pass and claim tasks it queues in one atomic step."""

    async def apply_and_claim(
        self, write: DecisionWrite, claim_ids: Sequence[str], worker_id: str, lease_seconds: float
    ) -> tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]:
        """``write`` as ``apply_decision`` applies it, then, of ``claim_ids``, the tasks it
        queued claimed for ``worker_id`` as ``Store.claim`` claims them (a task whose
        compare-and-set lost is not claimed). Atomic where the store can make it so."""
        ...

    async def apply_and_claim_many(
        self,
        requests: Sequence[tuple[DecisionWrite, Sequence[str]]],
        worker_id: str,
        lease_seconds: float,
    ) -> list[tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]]:
        """What ``apply_and_claim`` returns for each ``(write, claim_ids)``, in order; the
        writes of different runs may share statements."""
        ...


@runtime_checkable
class FinishAndReadStore(Protocol):
    """A store that records a report and reads its runs' passes in one step."""

    async def finish_and_read(
        self, outcomes: Sequence[AttemptOutcome], requests: Sequence[tuple[str, bool]]
    ) -> tuple[list[str], list[RunDelta | NotFound]]:
        """``finish_attempts(outcomes)``, then what ``load_run_deltas(requests)`` returns
        right after it."""
        ...


async def finish_and_read(
    store: Store, outcomes: Sequence[AttemptOutcome], requests: Sequence[tuple[str, bool]]
) -> tuple[list[str], list[RunDelta | NotFound]]:
    """Through the store's combined call when it has one, else the report, then the read."""
    if isinstance(store, FinishAndReadStore):
        return await store.finish_and_read(outcomes, requests)
    accepted = await store.finish_attempts(outcomes)
    return accepted, await load_run_deltas(store, requests)


async def load_run_deltas(
    store: Store, requests: Sequence[tuple[str, bool]]
) -> list[RunDelta | NotFound]:
    """Through the store's batch read when it has one, else one run at a time."""
    if isinstance(store, BatchPassStore):
        return await store.load_run_deltas(requests)
    results: list[RunDelta | NotFound] = []
    for run_id, with_layers in requests:
        try:
            results.append(await load_run_delta(store, run_id, with_layers))
        except NotFound as exc:
            results.append(exc)
    return results


async def get_tasks_many(store: Store, run_ids: Sequence[str]) -> list[list[TaskRecord]]:
    """Through the store's batch read when it has one, else one run at a time."""
    if isinstance(store, BatchPassStore):
        return await store.get_tasks_many(run_ids)
    return [await store.get_tasks(run_id) for run_id in run_ids]


async def apply_decisions(store: Store, writes: Sequence[DecisionWrite]) -> list[Applied]:
    """Through the store's batch write when it has one, else one write at a time."""
    if isinstance(store, BatchPassStore):
        return await store.apply_decisions(writes)
    return [await apply_one(store, write) for write in writes]


async def apply_one(store: Store, write: DecisionWrite) -> Applied:
    """One :class:`DecisionWrite` through :meth:`Store.apply_decision`."""
    return await store.apply_decision(write.changes, write.settled, write.run_change, write.events)
