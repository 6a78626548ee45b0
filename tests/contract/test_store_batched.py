"""Store contract: batched compare-and-set and repeated run-state reads (all three stores)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.contract.store_records import seed
from treadle.errors import NotFound
from treadle.store.base import Store
from treadle.store.batch import (
    apply_decisions,
    finish_and_read,
    get_tasks_many,
    load_run_deltas,
)
from treadle.store.delta import RunDelta, load_run_delta
from treadle.store.records import AttemptOutcome, DecisionWrite, TaskChange


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


async def test_run_delta_reads_open_rows_and_a_fingerprint(store: Store) -> None:
    run, tasks = await seed(store, 5, status="pending")
    delta = await load_run_delta(store, run.id)
    assert delta.run == await store.get_run(run.id)
    assert (delta.rows, delta.task_count, delta.version_sum) == ([], 5, 5)
    assert delta.layers == []
    a, b, c, d, _ = tasks
    await store.update_tasks(
        [
            TaskChange(a.id, 1, {"status": "queued"}),
            TaskChange(b.id, 1, {"status": "completed", "output": {"n": 1}, "settled": False}),
            TaskChange(c.id, 1, {"status": "failed", "settled": True}),
            TaskChange(d.id, 1, {"status": "paused"}),
        ]
    )
    delta = await load_run_delta(store, run.id)
    # Only the finished, unsettled row is read; the fingerprint counts every row and sums the
    # versions of those not queued or running (a: queued, left out).
    assert [row["id"] for row in delta.rows] == [b.id]
    row = delta.rows[0]
    assert row["output"] == {"n": 1}
    assert (row["status"], row["settled"], row["version"]) == ("completed", False, 2)
    assert (delta.task_count, delta.version_sum) == (5, 7)
    await store.mark_settled([b.id])
    delta = await load_run_delta(store, run.id)
    assert delta.rows == []
    assert delta.version_sum == 7  # settling is bookkeeping: no version moves
    # A retry of a settled row makes it unsettled again and moves its version.
    await store.update_tasks([TaskChange(c.id, 2, {"status": "pending", "settled": False})])
    assert (await load_run_delta(store, run.id)).version_sum == 8


async def test_repeated_deltas_of_several_runs_each_hold_their_run(store: Store) -> None:
    # The second read of a run may take its row with its task rows (PostgreSQL, once the
    # run's immutable columns are held): a run without any task row must still come back.
    empty, _ = await seed(store, 0)
    run, tasks = await seed(store, 2, status="pending")
    requests = [(empty.id, False), (run.id, False)]
    first = await load_run_deltas(store, requests)
    await store.update_tasks([TaskChange(tasks[0].id, 1, {"status": "skipped"})])
    again = await load_run_deltas(store, requests)
    for before, after, run_id in zip(first, again, (empty.id, run.id), strict=True):
        assert isinstance(before, RunDelta) and isinstance(after, RunDelta)
        assert before.run == after.run == await store.get_run(run_id)
    assert isinstance(again[0], RunDelta) and isinstance(again[1], RunDelta)
    assert (again[0].rows, again[0].task_count, again[0].version_sum) == ([], 0, 0)
    assert [row["id"] for row in again[1].rows] == [tasks[0].id]
    assert (again[1].task_count, again[1].version_sum) == (2, 3)


async def test_run_delta_of_a_missing_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await load_run_delta(store, "no-such-run")


# -- several runs' passes at once (store/batch.py: the store's own or the one-by-one way) ------
async def test_batched_deltas_equal_the_single_reads(store: Store) -> None:
    run_a, tasks_a = await seed(store, 4, status="pending")
    run_b, _ = await seed(store, 2, status="pending")
    await store.update_tasks(
        [
            TaskChange(tasks_a[0].id, 1, {"status": "completed", "output": {"x": 1}}),
            TaskChange(tasks_a[1].id, 1, {"status": "queued"}),
        ]
    )
    requests = [(run_b.id, True), ("no-such-run", False), (run_a.id, False), (run_b.id, False)]
    got = await load_run_deltas(store, requests)
    assert isinstance(got[1], NotFound)
    for (run_id, with_layers), delta in zip(requests, got, strict=True):
        if run_id == "no-such-run":
            continue
        assert delta == await load_run_delta(store, run_id, with_layers)
    delta_a = got[2]
    assert isinstance(delta_a, RunDelta)
    assert [row["id"] for row in delta_a.rows] == [tasks_a[0].id]
    assert (delta_a.task_count, delta_a.version_sum) == (4, 4)  # queued: left out
    assert await load_run_deltas(store, []) == []


async def test_batched_task_reads_keep_each_runs_order(store: Store) -> None:
    run_a, _ = await seed(store, 3, status="pending")
    run_b, _ = await seed(store, 2, status="pending")
    got = await get_tasks_many(store, [run_b.id, "no-such-run", run_a.id])
    assert got == [await store.get_tasks(run_b.id), [], await store.get_tasks(run_a.id)]
    assert [t.seq for t in got[2]] == sorted(t.seq for t in got[2])


async def test_batched_decisions_apply_each_as_alone(store: Store) -> None:
    run_a, (a1, a2) = await seed(store, 2, status="pending")
    run_b, (b1,) = await seed(store, 1, status="pending")
    _, (c1,) = await seed(store, 1, status="pending")
    await store.update_tasks([TaskChange(a2.id, 1, {"status": "completed"})])
    writes = [
        DecisionWrite(
            [TaskChange(a1.id, 1, {"status": "queued"})],
            [a2.id],
            (run_a.id, 1, {"status": "paused"}),
            [(run_a.id, "run.paused", "coordinator", {"n": 1})],
        ),
        # A stale task version and a stale run version: neither moves, no event is recorded.
        DecisionWrite(
            [TaskChange(b1.id, 7, {"status": "skipped"})],
            [],
            (run_b.id, 9, {"status": "cancelled"}),
            [(run_b.id, "run.cancelled", "coordinator", {})],
        ),
        DecisionWrite([TaskChange(c1.id, 1, {"status": "skipped"})], [], None, []),
    ]
    results = await apply_decisions(store, writes)
    assert [won for won, _ in results] == [[a1.id], [], [c1.id]]
    updated_a = results[0][1]
    assert updated_a is not None and (updated_a.status, updated_a.version) == ("paused", 2)
    assert results[1][1] is None and results[2][1] is None
    assert (await store.get_task(a1.id)).status == "queued"
    assert (await store.get_task(a2.id)).settled is True
    assert (await store.get_task(b1.id)).status == "pending"
    assert (await store.get_task(c1.id)).status == "skipped"
    assert (await store.get_run(run_b.id)).status == "running"
    assert [e.kind for e in await store.list_events(run_a.id)] == ["run.paused"]
    assert await store.list_events(run_b.id) == []
    assert await apply_decisions(store, []) == []


async def test_a_report_and_its_read_equal_a_report_then_a_read(store: Store) -> None:
    """``finish_and_read``: the deltas it returns are what a read right after the report
    returns (PostgreSQL makes both one statement and adds the reported rows itself)."""
    run, tasks = await seed(store, 4)  # queued
    (other_run, other_tasks) = await seed(store, 1)
    claimed = dict(
        (task.id, attempt)
        for task, attempt in await store.claim(
            [t.id for t in tasks[:3]] + [other_tasks[0].id], "w1", 30
        )
    )
    # The reads a pass made before: PostgreSQL then holds the runs' immutable columns.
    await load_run_deltas(store, [(run.id, False), (other_run.id, False)])
    a, b, c, _ = tasks
    outcomes = [
        AttemptOutcome(claimed[a.id].id, a.id, "completed", "completed", {"x": [1, "ä"]}),
        AttemptOutcome(claimed[b.id].id, b.id, "failed", "queued", None, "boom"),  # a retry
        AttemptOutcome(claimed[c.id].id, c.id, "failed", "failed", None, "bad"),
        AttemptOutcome("no-such-attempt", a.id, "completed", "completed", None),  # stale
    ]
    requests = [(run.id, False), (other_run.id, False)]
    accepted, deltas = await finish_and_read(store, outcomes, requests)
    assert sorted(accepted) == sorted(claimed[t.id].id for t in (a, b, c))
    # The same, but for the order of the open rows (a read returns them in no set order).
    assert _by_row_id(deltas) == _by_row_id(await load_run_deltas(store, requests))
    mine = deltas[0]
    assert isinstance(mine, RunDelta)
    assert sorted(row["id"] for row in mine.rows) == sorted([a.id, c.id])
    assert {row["id"]: row["output"] for row in mine.rows}[a.id] == {"x": [1, "ä"]}
    # a and c count (version 3: queued 1, claimed 2, reported 3); b is queued again, d queued.
    assert (mine.task_count, mine.version_sum) == (4, 6)
    # A run that is gone reads as NotFound; the report is recorded all the same.
    last = claimed[other_tasks[0].id]
    done = AttemptOutcome(last.id, other_tasks[0].id, "completed", "completed", None)
    accepted, (missing,) = await finish_and_read(store, [done], [("no-such-run", False)])
    assert accepted == [last.id] and isinstance(missing, NotFound)


def _by_row_id(deltas: list[RunDelta | NotFound]) -> list[RunDelta]:
    assert all(isinstance(delta, RunDelta) for delta in deltas)
    return [
        dataclasses.replace(delta, rows=sorted(delta.rows, key=lambda row: row["id"]))
        for delta in deltas
        if isinstance(delta, RunDelta)
    ]
