"""Record builders shared by the store contract tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from treadle.store.base import Store
from treadle.store.records import RunRecord, TaskRecord


def new_id() -> str:
    return uuid.uuid4().hex


def make_run(
    created_at: datetime,
    *,
    run_id: str | None = None,
    status: str = "running",
    definition: str = "demo",
    **extra: Any,
) -> RunRecord:
    return RunRecord(
        id=run_id or new_id(),
        definition_name=definition,
        definition_version=1,
        definition={"name": definition, "tasks": [{"name": "a", "run": "echo hi"}]},
        status=status,
        inputs={"n": 3, "words": ["ä", "b"], "nested": {"ok": True}},
        created_at=created_at,
        labels={"team": "blue"},
        **extra,
    )


def make_task(
    run_id: str,
    seq: int,
    created_at: datetime,
    *,
    status: str = "queued",
    available_at: datetime | None = None,
    priority: int = 0,
    task_id: str | None = None,
    queue: str = "default",
    **extra: Any,
) -> TaskRecord:
    queued = status == "queued"
    return TaskRecord(
        id=task_id or new_id(),
        run_id=run_id,
        name=f"task-{seq}",
        seq=seq,
        status=status,
        spec={"run": f"echo {seq}", "env": {"A": "1"}},
        depends_on=[] if seq == 0 else [f"task-{seq - 1}"],
        queue=queue,
        priority=priority,
        created_at=created_at,
        queued_at=created_at if queued else None,
        available_at=(available_at or created_at) if queued else available_at,
        **extra,
    )


async def seed(
    store: Store,
    tasks: int = 1,
    *,
    status: str = "queued",
    ago: float = 1.0,
    priorities: list[int] | None = None,
) -> tuple[RunRecord, list[TaskRecord]]:
    """One running run holding ``tasks`` tasks that became available ``ago`` seconds ago."""
    at = await store.now() - timedelta(seconds=ago)
    run = make_run(at)
    rows = [
        make_task(run.id, i, at, status=status, priority=priorities[i] if priorities else 0)
        for i in range(tasks)
    ]
    await store.create_run(run, rows)
    return run, rows
