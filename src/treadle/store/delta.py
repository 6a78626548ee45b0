"""What changed in a run since the coordinator last looked: unseen finished rows + a fingerprint.

A coordinator keeps each run it advances in memory (``treadle.engine.run_state``). On a pass
it does not read every task again: it reads the run, its layers, the task rows that finished
and no coordinator has seen yet (``settled`` false) and a fingerprint of the whole run: the row
count and the sum of the versions of every row that is not queued or running. Every task write
bumps the row's version (compare-and-set), so whatever moves a task into, out of or between the
counted states shows in the sum; only a worker's claim (queued -> running) and a retry (running
-> queued) do not, and the scheduler does not tell those two apart. If the copy plus the read
does not add up to the fingerprint, something changed unseen (an operator's retry, another
coordinator's skip) and the coordinator reloads the run once.

Stores that can compute this in the database implement :class:`RunDeltaStore`; for the others
:func:`delta_from_states` derives it from :meth:`Store.load_run_state` (one full read, as
before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from treadle.model.states import TaskStatus
from treadle.store.base import Store
from treadle.store.records import LIGHT_TASK_FIELDS, LayerRecord, RunRecord

#: Statuses a worker moves between without the coordinator: left out of the version sum.
ACTIVE_STATUSES = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
TERMINAL_STATUSES = tuple(s.value for s in TaskStatus if s.terminal)


@dataclass(frozen=True, slots=True)
class RunDelta:
    """One consistent look at a run for the coordinator (see the module docstring)."""

    run: RunRecord
    #: Finished, unsettled task rows: the light columns (``LIGHT_TASK_FIELDS``) + ``output``.
    rows: list[dict[str, Any]]
    task_count: int
    #: Sum of ``version`` over the rows whose status is not in :data:`ACTIVE_STATUSES`.
    version_sum: int
    layers: list[LayerRecord]


@runtime_checkable
class RunDeltaStore(Protocol):
    """A store that reads a :class:`RunDelta` without reading the run's other rows."""

    async def load_run_delta(self, run_id: str, with_layers: bool = True) -> RunDelta:
        """The run, its unseen finished task rows, its task fingerprint and (if asked) its layers;
        NotFound if there is no such run."""
        ...


def is_unseen(status: str, settled: bool) -> bool:
    """Whether a task row with this status belongs in a :class:`RunDelta`."""
    return status in TERMINAL_STATUSES and not settled


#: The columns of an open row in a :class:`RunDelta`.
OPEN_ROW_FIELDS = (*LIGHT_TASK_FIELDS, "output")


def fingerprinted_rows(
    records: Sequence[Sequence[Any]],
) -> tuple[dict[str, tuple[int, int]], dict[str, list[dict[str, Any]]]]:
    """Fingerprints by run and each run's open rows, from the records of a read that returns
    (run id, row count, version sum, *:data:`OPEN_ROW_FIELDS`) per open row, or with the
    row's fields empty (NULL) for a run that has none open."""
    fingerprints: dict[str, tuple[int, int]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        run_id = record[0]
        fingerprints[run_id] = (int(record[1]), int(record[2]))
        if record[3] is not None:
            rows.setdefault(run_id, []).append(dict(zip(OPEN_ROW_FIELDS, record[3:], strict=True)))
    return fingerprints, rows


def weight(status: str, version: int) -> int:
    """A row's share of :attr:`RunDelta.version_sum`."""
    return 0 if status in ACTIVE_STATUSES else version


def delta_from_states(
    run: RunRecord,
    states: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, Any] | None,
    layers: list[LayerRecord],
) -> RunDelta:
    """A :class:`RunDelta` computed from every light row of the run (stores without
    :class:`RunDeltaStore`)."""
    outputs = outputs or {}
    rows = [
        {**row, "output": outputs.get(row["id"])}
        for row in states
        if is_unseen(str(row["status"]), bool(row["settled"]))
    ]
    return RunDelta(
        run=run,
        rows=rows,
        task_count=len(states),
        version_sum=sum(weight(str(row["status"]), int(row["version"])) for row in states),
        layers=layers,
    )


async def load_run_delta(store: Store, run_id: str, with_layers: bool = True) -> RunDelta:
    """Through the store's own query when it has one, else from a full light read.

    Layers are created with their run and never added later, so a caller that saw a run
    without layers may pass ``with_layers=False`` and save a read."""
    if isinstance(store, RunDeltaStore):
        return await store.load_run_delta(run_id, with_layers)
    run, states, outputs = await store.load_run_state(run_id, True)
    layers = await store.get_layers(run_id) if with_layers else []
    return delta_from_states(run, states, outputs, layers)
