"""Store contract: batched compare-and-set and repeated run-state reads (all three stores)."""

from __future__ import annotations

import asyncio

from tests.contract.store_records import seed
from treadle.store.base import Store
from treadle.store.records import TaskChange


async def test_many_changes_with_equal_values_are_each_compare_and_set(store: Store) -> None:
    run, tasks = await seed(store, 30, status="pending")
    changes = [
        # Every third change carries a stale version and must lose; the rest win once.
        TaskChange(t.id, 9 if i % 3 == 0 else 1, {"status": "queued", "error": None})
        for i, t in enumerate(tasks)
    ]
    won = await store.update_tasks(changes)
    expected = sorted(t.id for i, t in enumerate(tasks) if i % 3 != 0)
    assert sorted(won) == expected
    got = {t.id: t for t in await store.get_tasks(run.id)}
    for i, task in enumerate(tasks):
        if i % 3 == 0:
            assert got[task.id] == task
        else:
            assert (got[task.id].status, got[task.id].version) == ("queued", 2)
    # The same batch again: every version moved on, nothing wins.
    assert await store.update_tasks(changes) == []


async def test_concurrent_equal_batches_each_task_won_once(store: Store) -> None:
    _, tasks = await seed(store, 40, status="pending")
    batches = [
        [TaskChange(t.id, 1, {"status": "queued"}) for t in tasks[start:]]
        for start in (0, 5, 10, 0, 20, 35)
    ]
    results = await asyncio.gather(*(store.update_tasks(b) for b in batches))
    won = [task_id for r in results for task_id in r]
    assert sorted(won) == sorted(t.id for t in tasks)


async def test_run_state_is_the_same_on_a_repeated_read(store: Store) -> None:
    run, tasks = await seed(store, 3, status="pending")
    first, states, _ = await store.load_run_state(run.id, False)
    await store.update_tasks([TaskChange(tasks[0].id, 1, {"status": "queued"})])
    again, states_again, _ = await store.load_run_state(run.id, True)
    assert again == first == await store.get_run(run.id)
    assert [s["status"] for s in states_again] == ["queued", "pending", "pending"]
    assert [s["status"] for s in states] == ["pending", "pending", "pending"]
