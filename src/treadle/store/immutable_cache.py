"""The immutable columns of runs this process has read (definition, inputs), bounded.

A run's definition and inputs never change, so the per-pass reads of a SQL store skip them
once they are here. The bound is on the definitions' tasks as well as on runs: a definition
of 1,000 tasks holds some 3,000 Python objects, and 2,000 such runs kept after they finished
made every full garbage collection trace millions of objects.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from treadle.store.records import RunRecord

MAX_RUNS = 2000
MAX_TASKS = 200_000


class ImmutableColumns:
    """Run id -> (definition, inputs), oldest dropped first beyond either bound."""

    def __init__(self, max_runs: int = MAX_RUNS, max_tasks: int = MAX_TASKS) -> None:
        self.max_runs = max_runs
        self.max_tasks = max_tasks
        self._entries: OrderedDict[str, tuple[Any, Any, int]] = OrderedDict()
        self.tasks = 0  # definition tasks held

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, run_id: str) -> tuple[Any, Any]:
        definition, inputs, _ = self._entries[run_id]
        return definition, inputs

    def get(self, run_id: str) -> tuple[Any, Any] | None:
        entry = self._entries.get(run_id)
        return None if entry is None else (entry[0], entry[1])

    def remember(self, run: RunRecord) -> None:
        tasks = run.definition.get("tasks")
        weight = 1 + (len(tasks) if isinstance(tasks, list) else 0)
        old = self._entries.pop(run.id, None)
        if old is not None:
            self.tasks -= old[2]
        self._entries[run.id] = (run.definition, run.inputs, weight)
        self.tasks += weight
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_runs or self.tasks > self.max_tasks
        ):
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.tasks -= dropped
