"""Reads the UI makes from the store, shaped for the templates.

The UI reads in-process (the store is the source of truth and this keeps the runs table fast)
and writes only through the REST API (see :mod:`treadle.ui.api_client`), so every change goes
through the same checks as any other client's.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from treadle.model.states import TaskStatus
from treadle.store.base import Store
from treadle.store.records import AttemptRecord, EventRecord, RunRecord, TaskRecord
from treadle.store.stats import StoreStats

TERMINAL_TASK = {s.value for s in TaskStatus if s.terminal}
DONE_TASK = {"completed", "skipped"}


@dataclass(frozen=True, slots=True)
class RunRow:
    """One line of the runs table."""

    run: RunRecord
    total: int
    done: int
    failed: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


async def task_counts(store: Store, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per-run task status counts: one grouped query where the store offers it."""
    if isinstance(store, StoreStats):
        return await store.task_counts(run_ids)
    states = await asyncio.gather(*(store.get_task_states(r) for r in run_ids))
    return {
        r: dict(Counter(t.status for t in tasks)) for r, tasks in zip(run_ids, states, strict=True)
    }


async def run_rows(store: Store, runs: list[RunRecord]) -> list[RunRow]:
    counts = await task_counts(store, [r.id for r in runs])
    rows = []
    for run in runs:
        c = counts.get(run.id, {})
        rows.append(
            RunRow(
                run,
                total=sum(c.values()),
                done=sum(n for s, n in c.items() if s in DONE_TASK),
                failed=c.get("failed", 0),
            )
        )
    return rows


async def queue_depths(store: Store) -> dict[str, dict[str, int]] | None:
    """Queue -> counts, or None when the store cannot tell."""
    if isinstance(store, StoreStats):
        return await store.queue_depths()
    return None


@dataclass(frozen=True, slots=True)
class Layer:
    """A run's layer as the UI shows it (from the store's layer rows when it has them)."""

    id: str | None
    name: str
    priority: int
    status: str
    etag: str | None


@dataclass
class RunSnapshot:
    """Everything the run page shows, read at one moment."""

    run: RunRecord
    tasks: list[TaskRecord]
    attempts: dict[str, list[AttemptRecord]]
    events: list[EventRecord]
    layers: list[Layer]
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)

    def task(self, name: str | None) -> TaskRecord | None:
        for task in self.tasks:
            if task.name == name or task.id == name:
                return task
        return None

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if s in DONE_TASK)

    def children(self, task: TaskRecord) -> list[TaskRecord]:
        """Fan-out children of ``task`` (tasks whose ``parent_id`` is its id)."""
        return [t for t in self.tasks if getattr(t, "parent_id", None) == task.id]

    def top_level(self) -> list[TaskRecord]:
        return [t for t in self.tasks if getattr(t, "parent_id", None) is None]


async def _layers(store: Store, run: RunRecord, tasks: list[TaskRecord]) -> list[Layer]:
    """Layer rows from a store that keeps them; else the definition's list; else task names."""
    getter = getattr(store, "get_layers", None)
    if callable(getter):
        rows: list[Any] = await getter(run.id)
        return [
            Layer(
                id=str(r.id),
                name=str(r.name),
                priority=int(r.priority),
                status="paused"
                if getattr(r, "paused", False) and r.status == "pending"
                else str(r.status),
                etag=str(r.version),
            )
            for r in rows
        ]
    declared = run.definition.get("layers") or []
    layers = [
        Layer(None, str(item.get("name")), int(item.get("priority", i)), "", None)
        for i, item in enumerate(declared)
        if isinstance(item, dict) and item.get("name")
    ]
    known = {layer.name for layer in layers}
    for task in tasks:
        if task.layer and task.layer not in known:
            known.add(task.layer)
            layers.append(Layer(None, task.layer, len(layers), "", None))
    return sorted(layers, key=lambda layer: layer.priority)


async def run_snapshot(store: Store, run_id: str) -> RunSnapshot:
    run = await store.get_run(run_id)
    tasks, attempts, events, now = await asyncio.gather(
        store.get_tasks(run_id), store.get_attempts(run_id), store.list_events(run_id), store.now()
    )
    by_task: dict[str, list[AttemptRecord]] = defaultdict(list)
    for attempt in sorted(attempts, key=lambda a: (a.task_id, a.number)):
        by_task[attempt.task_id].append(attempt)
    layers = await _layers(store, run, tasks)
    counts = dict(Counter(t.status for t in tasks))
    return RunSnapshot(run, tasks, dict(by_task), events, layers, now, counts)
