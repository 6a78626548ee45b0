"""A coordinator's in-memory copy of one run's tasks, kept current from small reads.

The store stays the source of truth. This copy only spares the coordinator from reading every
task of a run on every pass: each pass reads a :class:`~treadle.store.delta.RunDelta` (the
finished rows no coordinator has seen yet and a fingerprint), folds it in with
:meth:`RunState.absorb`, and hands the scheduler :meth:`RunState.view` (top-level tasks, plus
each fan-out group's open children and the next few pending ones; finished, settled children
are only counted). When the fingerprint does not
add up, or one of our own compare-and-sets lost, the copy is dropped and rebuilt from a full
read: whatever the copy believed, a write based on a stale row fails its compare-and-set.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from treadle.engine.fanout import is_group
from treadle.model.states import TASK_TERMINAL, TaskStatus
from treadle.store.delta import RunDelta, weight
from treadle.store.records import RunRecord, TaskChange, TaskRecord

_PENDING, _OPEN, _DONE = 0, 1, 2
_FIELDS = frozenset(TaskRecord.__slots__)


def _bucket(task: TaskRecord) -> int:
    if task.status == TaskStatus.PENDING:
        return _PENDING
    if task.settled and task.status in TASK_TERMINAL:
        return _DONE
    return _OPEN


class StaleState(Exception):
    """The copy cannot be brought up to date incrementally; reload the run."""


class RunState:
    """One run's tasks as this coordinator last knew them (see the module docstring)."""

    def __init__(
        self, run: RunRecord, tasks: Iterable[TaskRecord], has_layers: bool = True
    ) -> None:
        self.run = run
        self.has_layers = has_layers  # layers come with the run: none now means none ever
        self.tasks: dict[str, TaskRecord] = {}
        self.top: list[str] = []  # top-level task ids, in seq order
        self.unseen: dict[str, None] = {}  # finished, not settled: the rows a delta returns
        # Per fan-out group: children by bucket. Pending ones keep index (= seq) order.
        self.pending: dict[str, dict[str, None]] = {}
        self.open: dict[str, dict[str, None]] = {}
        self.done: dict[str, Counter[str]] = {}
        self.version_sum = 0
        self.max_seq = 0
        # Tasks queued, running or finished but not settled, as of this copy (which does not
        # follow claims): how many tasks of the run may still report.
        self.open_total = 0
        # Passes made with this copy: a read taken between two passes is only good for the
        # next one (see Coordinator.pass_read).
        self.passes = 0
        ordered = sorted(tasks, key=lambda t: t.seq)
        children: Counter[str] = Counter()
        for task in ordered:
            self.tasks[task.id] = task
            self.version_sum += weight(task.status, task.version)
            self.max_seq = max(self.max_seq, task.seq)
            if task.parent_id is None:
                self.top.append(task.id)
            else:
                children[task.parent_id] += 1
            self._file(task)
        # A full read has no ``rendered``-derived item count in light rows: the rows say it.
        for parent_id, count in children.items():
            parent = self.tasks.get(parent_id)
            if parent is not None and "fanout_items" not in (parent.rendered or {}):
                rendered = {**(parent.rendered or {}), "fanout_items": count}
                self.tasks[parent_id] = dataclasses.replace(parent, rendered=rendered)

    def __len__(self) -> int:
        return len(self.tasks)

    # -- keeping current ------------------------------------------------------------------
    def _file(self, task: TaskRecord) -> None:
        bucket = _bucket(task)
        if bucket == _OPEN:
            self.open_total += 1
            if not task.settled and task.status in TASK_TERMINAL:
                self.unseen[task.id] = None
        if task.parent_id is None:
            return
        if bucket == _PENDING:
            self.pending.setdefault(task.parent_id, {})[task.id] = None
        elif bucket == _OPEN:
            self.open.setdefault(task.parent_id, {})[task.id] = None
        else:
            self.done.setdefault(task.parent_id, Counter())[task.status] += 1

    def _unfile(self, task: TaskRecord) -> None:
        bucket = _bucket(task)
        self.unseen.pop(task.id, None)
        if bucket == _OPEN:
            self.open_total -= 1
        if task.parent_id is None:
            return
        if bucket == _PENDING:
            self.pending.get(task.parent_id, {}).pop(task.id, None)
        elif bucket == _OPEN:
            self.open.get(task.parent_id, {}).pop(task.id, None)
        else:
            self.done[task.parent_id][task.status] -= 1

    def _replace(self, old: TaskRecord, new: TaskRecord) -> None:
        if old.parent_id is not None and _bucket(new) == _PENDING != _bucket(old):
            # Back to pending would lose the children's index order: a reload restores it.
            raise StaleState(f"task {new.id} went back to pending")
        self._unfile(old)
        self._file(new)
        self.version_sum += weight(new.status, new.version) - weight(old.status, old.version)
        self.tasks[new.id] = new

    def absorb(self, delta: RunDelta) -> None:
        """Fold in a fresh read; raise :class:`StaleState` when it does not add up."""
        seen: set[str] = set()
        for row in delta.rows:
            old = self.tasks.get(row["id"])
            if old is None:
                raise StaleState(f"task {row['id']} is new")
            seen.add(old.id)
            if old.version != row["version"] or old.settled != row["settled"]:
                self._replace(old, dataclasses.replace(old, **row))
            elif row["output"] is not None and old.output is None:
                self.tasks[old.id] = dataclasses.replace(old, output=row["output"])
        # Finished rows unseen here but missing from the read were settled by another
        # coordinator (no version change); anything else that moved shows in the fingerprint.
        for task_id in [i for i in self.unseen if i not in seen]:
            task = self.tasks[task_id]
            self._replace(task, dataclasses.replace(task, settled=True))
        if delta.task_count != len(self.tasks) or delta.version_sum != self.version_sum:
            raise StaleState("task fingerprint differs")
        self.run = delta.run

    def won(self, changes: Sequence[TaskChange], won: set[str]) -> None:
        """Apply our own compare-and-sets that won (each bumped the version by one)."""
        for change in changes:
            old = self.tasks.get(change.task_id)
            if old is None or change.task_id not in won:
                continue
            values = {k: v for k, v in change.values.items() if k in _FIELDS}
            rendered = values.get("rendered")
            if isinstance(rendered, Mapping) and "fanout_items" not in rendered:
                values["rendered"] = None  # a worker's spec: the scheduler never reads it
            self._replace(old, dataclasses.replace(old, **values, version=old.version + 1))

    def reported(self, task: TaskRecord) -> None:
        """Our own report of a task, stored as ``task`` shows it (engine/step_ahead.py)."""
        self._replace(self.tasks[task.id], task)

    def settled(self, task_ids: Iterable[str]) -> None:
        """Our own settled marks (no version change)."""
        for task_id in task_ids:
            old = self.tasks.get(task_id)
            if old is not None and not old.settled:
                self._replace(old, dataclasses.replace(old, settled=True))

    def expanded(self, change: TaskChange, children: Sequence[TaskRecord]) -> None:
        """Our own fan-out expansion won: the parent moved and its children exist."""
        self.won([change], {change.task_id})
        for child in children:
            self.tasks[child.id] = child
            self.version_sum += weight(child.status, child.version)
            self.max_seq = max(self.max_seq, child.seq)
            self._file(child)

    # -- what the scheduler sees ----------------------------------------------------------
    def view(self, window: int, everything: bool = False) -> tuple[list[TaskRecord], Any]:
        """The tasks to decide on and the per-group counts of finished, settled children.

        Each group contributes its open children and its first ``max_parallel`` (or
        ``window``) pending ones: the scheduler dispatches no more than that in one pass.
        ``everything`` gives every task (a run timing out cancels them all).
        """
        top = [self.tasks[i] for i in self.top]
        if everything:
            return list(self.tasks.values()), {}
        tasks = list(top)
        counts: dict[str, Mapping[str, int]] = {}
        for parent in top:
            if not is_group(parent) or parent.status != TaskStatus.RUNNING:
                continue
            limit = int(parent.spec.get("max_parallel") or window)
            tasks.extend(self.tasks[i] for i in self.open.get(parent.id, ()))
            pending = self.pending.get(parent.id, {})
            for count, child_id in enumerate(pending):
                if count >= limit:
                    break
                tasks.append(self.tasks[child_id])
            done = self.done.get(parent.id)
            if done:
                counts[parent.id] = {k: v for k, v in done.items() if v}
        return tasks, counts
