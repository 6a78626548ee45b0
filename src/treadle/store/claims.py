"""The attempt records a claim creates, shared by every store's claim path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from treadle.model.states import AttemptStatus
from treadle.store.records import AttemptRecord, TaskRecord


def claimed_pairs(
    tasks: Iterable[TaskRecord], worker_id: str, started_at: datetime, lease_expires_at: datetime
) -> list[tuple[TaskRecord, AttemptRecord]]:
    """Each claimed task (already moved to running, ``attempt_id`` set) with its new attempt."""
    pairs: list[tuple[TaskRecord, AttemptRecord]] = []
    for task in tasks:
        assert task.attempt_id is not None
        attempt = AttemptRecord(
            id=task.attempt_id,
            task_id=task.id,
            run_id=task.run_id,
            number=task.attempt_count,
            status=AttemptStatus.RUNNING.value,
            worker_id=worker_id,
            started_at=started_at,
            lease_expires_at=lease_expires_at,
        )
        pairs.append((task, attempt))
    return pairs
