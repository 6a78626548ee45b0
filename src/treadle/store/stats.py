"""Optional aggregate reads a store may offer for dashboards (the web UI).

They are not part of :class:`~treadle.store.base.Store`: a store without them still works,
and callers fall back (task counts from each run's task states) or show "not reported" (queue
depths). :class:`~treadle.store.sql.SqlStore` implements both; the Redis store does not yet
(it would count its per-status task indexes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class StoreStats(Protocol):
    async def task_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Run id -> {task status: count} for the given runs (one grouped read)."""

    async def queue_depths(self) -> dict[str, dict[str, int]]:
        """Queue -> {"queued": n, "running": n} over unfinished tasks of every run."""
