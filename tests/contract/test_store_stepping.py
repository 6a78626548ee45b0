"""``finish_and_step`` (store/stepping.py) on PostgreSQL, the store that implements it.

With its guard holding it leaves exactly what a report followed by the step's write-and-claim
leaves; when the run moved, the report is stale or the step's compare-and-set lost, it leaves
what the report alone leaves (plus the settled mark, in the last case).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from tests.contract.store_records import seed
from tests.contract.store_services import drop_postgres, open_postgres
from treadle.store.delta import load_run_delta
from treadle.store.postgres import PostgresStore
from treadle.store.records import (
    AttemptOutcome,
    DecisionWrite,
    RunRecord,
    TaskChange,
    TaskRecord,
)
from treadle.store.stepping import RunFingerprint, SteppingStore, StepResult

Prepare = Callable[[PostgresStore, RunRecord, list[TaskRecord]], Awaitable[None]]


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    opened = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    await opened.migrate()
    yield opened
    await drop_postgres(opened)


async def _running_chain(store: PostgresStore) -> tuple[RunRecord, list[TaskRecord], str]:
    """A run of three pending tasks whose first is running under an attempt of worker w1."""
    run, tasks = await seed(store, 3, status="pending")
    queued = {"status": "queued", "available_at": await store.now()}
    await store.update_tasks([TaskChange(tasks[0].id, 1, queued)])
    ((task, attempt),) = await store.claim([tasks[0].id], "w1", 30)
    assert task.status == "running"
    return run, tasks, attempt.id


async def _expected(store: PostgresStore, run_id: str) -> RunFingerprint:
    delta = await load_run_delta(store, run_id, False)
    return RunFingerprint(run_id, delta.run.version, delta.task_count, delta.version_sum)


def _step(tasks: list[TaskRecord], now: datetime, version: int = 1) -> TaskChange:
    values = {"status": "queued", "rendered": {"a": "ä"}, "queued_at": now}
    values |= {"available_at": now, "published_at": now}
    return TaskChange(tasks[1].id, version, values)


def _outcome(attempt_id: str, tasks: list[TaskRecord]) -> AttemptOutcome:
    return AttemptOutcome(attempt_id, tasks[0].id, "completed", "completed", {"out": [1, "ä"]})


async def _state(store: PostgresStore, run_id: str) -> tuple[Any, ...]:
    rows = [
        (t.name, t.status, t.version, t.settled, t.output, t.attempt_count)
        for t in await store.get_tasks(run_id)
    ]
    attempts = [(a.number, a.status, a.worker_id) for a in await store.get_attempts(run_id)]
    return rows, sorted(attempts)


async def _report_and_step(
    store: PostgresStore,
    run: RunRecord,
    tasks: list[TaskRecord],
    attempt_id: str,
    version: int = 1,
) -> StepResult:
    """Report the first task's attempt and step to the second, as the run is now."""
    now = await store.now()
    expected = await _expected(store, run.id)
    step = _step(tasks, now, version)
    return await store.finish_and_step(_outcome(attempt_id, tasks), expected, step, "w2", 30, now)


def test_postgres_is_a_stepping_store() -> None:
    assert isinstance(PostgresStore.__new__(PostgresStore), SteppingStore)


async def test_a_step_leaves_what_a_report_then_a_write_and_claim_leave(
    store: PostgresStore,
) -> None:
    run, tasks, attempt_id = await _running_chain(store)
    result = await _report_and_step(store, run, tasks, attempt_id)
    assert result.accepted == [attempt_id] and result.stepped
    ((claimed, attempt),) = result.claimed
    assert (claimed.name, claimed.status, attempt.worker_id, attempt.number) == (
        "task-1",
        "running",
        "w2",
        1,
    )
    stepped = await _state(store, run.id)

    twin, twin_tasks, twin_attempt = await _running_chain(store)
    assert await store.finish_attempts([_outcome(twin_attempt, twin_tasks)]) == [twin_attempt]
    write = DecisionWrite([_step(twin_tasks, await store.now())], [twin_tasks[0].id], None, [])
    _, pairs = await store.apply_and_claim(write, [twin_tasks[1].id], "w2", 30)
    assert [(t.name, t.version) for t, _ in pairs] == [(claimed.name, claimed.version)]
    assert await _state(store, twin.id) == stepped
    assert result.reported_version == stepped[0][0][2]
    assert stepped[0][0][1:4] == ("completed", 4, True)


async def _bump_run(store: PostgresStore, run: RunRecord, tasks: list[TaskRecord]) -> None:
    assert await store.update_run(run.id, run.version, {"status": "paused"}) is not None


async def _skip_a_task(store: PostgresStore, run: RunRecord, tasks: list[TaskRecord]) -> None:
    await store.update_tasks([TaskChange(tasks[2].id, 1, {"status": "skipped"})])


@pytest.mark.parametrize("change", [_bump_run, _skip_a_task], ids=["run-moved", "task-moved"])
async def test_when_the_run_moved_only_the_report_is_stored(
    store: PostgresStore, change: Prepare
) -> None:
    now = await store.now()
    run, tasks, attempt_id = await _running_chain(store)
    expected = await _expected(store, run.id)
    await change(store, run, tasks)
    result = await store.finish_and_step(
        _outcome(attempt_id, tasks), expected, _step(tasks, now), "w2", 30, now
    )
    assert result == StepResult([attempt_id], False, 4, [])
    after = await _state(store, run.id)

    twin, twin_tasks, twin_attempt = await _running_chain(store)
    await change(store, twin, twin_tasks)
    await store.finish_attempts([_outcome(twin_attempt, twin_tasks)])
    assert await _state(store, twin.id) == after
    assert after[0][0][1:4] == ("completed", 4, False)  # left for an ordinary pass
    assert after[0][1][1] == "pending"


async def test_a_stale_report_stores_nothing(store: PostgresStore) -> None:
    run, tasks, attempt_id = await _running_chain(store)
    before = await _state(store, run.id)
    result = await _report_and_step(store, run, tasks, attempt_id + "-old")
    assert result == StepResult([], False, None, [])
    assert await _state(store, run.id) == before


async def test_a_lost_compare_and_set_settles_the_report_and_claims_nothing(
    store: PostgresStore,
) -> None:
    run, tasks, attempt_id = await _running_chain(store)
    result = await _report_and_step(store, run, tasks, attempt_id, version=7)
    assert result == StepResult([attempt_id], True, 4, [])
    rows, attempts = await _state(store, run.id)
    assert [row[1:4] for row in rows] == [
        ("completed", 4, True),
        ("pending", 1, False),
        ("pending", 1, False),
    ]
    assert attempts == [(1, "completed", "w1")]
