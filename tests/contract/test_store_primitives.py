"""The Store contract, part 3: queue claims, kill checks, layers, fan-out and deadlines."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.contract.store_records import make_run, make_task, new_id, seed
from treadle.errors import NotFound
from treadle.store.base import Store
from treadle.store.records import (
    LIGHT_TASK_FIELDS,
    AttemptOutcome,
    LayerChange,
    LayerRecord,
    NewLog,
    TaskChange,
)


# -- claim_next ---------------------------------------------------------------------------
async def test_claim_next_takes_highest_priority_then_longest_waiting(store: Store) -> None:
    now = await store.now()
    run = make_run(now)
    ago = [now - timedelta(seconds=s) for s in (50, 40, 30, 20, 10)]
    low = make_task(run.id, 0, ago[0], priority=1)
    high_late = make_task(run.id, 1, ago[3], priority=5)
    high_early = make_task(run.id, 2, ago[1], priority=5)
    middle = make_task(run.id, 3, ago[2], priority=3)
    negative = make_task(run.id, 4, ago[4], priority=-2)
    future = make_task(run.id, 5, now, priority=9, available_at=now + timedelta(hours=1))
    other = replace(make_task(run.id, 6, ago[0], priority=9), queue="gpu")
    pending = make_task(run.id, 7, ago[0], status="pending", priority=9)
    await store.create_run(
        run, [low, high_late, high_early, middle, negative, future, other, pending]
    )

    # which tasks a claim takes is ordered; the order of the reply is not part of the contract
    first = await store.claim_next("default", 1, "w1", 30)
    first += await store.claim_next("default", 1, "w1", 30)
    assert [t.id for t, _ in first] == [high_early.id, high_late.id]
    for task, attempt in first:
        assert task.status == "running" and task.attempt_id == attempt.id
        assert (attempt.task_id, attempt.number, attempt.worker_id) == (task.id, 1, "w1")
        assert attempt.status == "running" and attempt.lease_expires_at > attempt.started_at
    ((second, _),) = await store.claim_next("default", 1, "w2", 30)
    assert second.id == middle.id
    assert {t.id for t, _ in await store.claim_next("default", 10, "w2", 30)} == {
        low.id,
        negative.id,
    }
    assert await store.claim_next("default", 10, "w2", 30) == []
    assert await store.claim_next("default", 0, "w2", 30) == []
    assert [t.id for t, _ in await store.claim_next("gpu", 5, "w3", 30)] == [other.id]
    assert await store.claim_next("nope", 5, "w3", 30) == []
    attempts = await store.get_attempts(run.id)
    assert len(attempts) == 6 and {a.status for a in attempts} == {"running"}


async def test_claim_next_follows_requeues_cancels_and_priority_changes(store: Store) -> None:
    _, tasks = await seed(store, 3, priorities=[0, 0, 0])
    a, b, c = tasks
    # a priority raised after queueing is claimed first; a cancelled task is never claimed
    assert await store.update_tasks([TaskChange(c.id, c.version, {"priority": 7})]) == [c.id]
    assert await store.update_tasks([TaskChange(b.id, b.version, {"status": "cancelled"})])
    ((task, attempt),) = await store.claim_next("default", 1, "w1", 30)
    assert task.id == c.id

    # a retry waits for its time, then is claimable again with attempt number 2
    retry_at = await store.now() + timedelta(seconds=60)
    out = AttemptOutcome(attempt.id, c.id, "failed", "queued", error="x", retry_at=retry_at)
    assert await store.finish_attempts([out]) == [attempt.id]
    ((task, attempt),) = await store.claim_next("default", 5, "w1", 30)
    assert task.id == a.id
    assert await store.claim_next("default", 5, "w1", 30) == []
    c_now = await store.get_task(c.id)
    await store.update_tasks([TaskChange(c.id, c_now.version, {"available_at": await store.now()})])
    ((task, again),) = await store.claim_next("default", 5, "w1", 30)
    assert (task.id, again.number) == (c.id, 2)

    # a lost worker's task is requeued by the sweeper and claimable again
    await store.finish_attempts([AttemptOutcome(attempt.id, a.id, "completed", "completed")])
    assert await store.renew_leases([again.id], 0.05) == [again.id]
    await asyncio.sleep(0.15)
    assert [t.id for t in await store.expire_leases(5)] == [c.id]
    ((task, third),) = await store.claim_next("default", 5, "w2", 30)
    assert (task.id, third.number, third.worker_id) == (c.id, 3, "w2")


async def test_concurrent_claim_next_claims_each_task_once(store: Store) -> None:
    await seed(store, 20)
    ids: list[str] = []
    for _ in range(20):  # racing claims may come back short; later rounds take the rest
        batches = await asyncio.gather(
            *(store.claim_next("default", 3, f"w{i}", 30) for i in range(6))
        )
        ids += [task.id for batch in batches for task, _ in batch]
        if len(ids) >= 20:
            break
    assert len(ids) == 20 and len(set(ids)) == 20


async def test_live_attempts(store: Store) -> None:
    _, tasks = await seed(store, 3)
    claimed = await store.claim([t.id for t in tasks], "w1", 30)
    (_, a), (_, b), (task_c, c) = claimed
    await store.finish_attempts([AttemptOutcome(b.id, b.task_id, "completed", "completed")])
    change = TaskChange(task_c.id, task_c.version, {"status": "cancelled"})
    assert await store.update_tasks([change]) == [task_c.id]
    assert await store.live_attempts([a.id, b.id, c.id, "nope"]) == [a.id]
    assert await store.live_attempts([]) == []


# -- layers -------------------------------------------------------------------------------
async def test_layers_round_trip_order_and_compare_and_set(store: Store) -> None:
    now = await store.now()
    run = make_run(now)
    late = LayerRecord(new_id(), run.id, "late", 10, "pending", now, paused=True)
    early = LayerRecord(new_id(), run.id, "early", 0, "running", now, started_at=now)
    mid = LayerRecord(new_id(), run.id, "mid", 5, "pending", now, error="e")
    task = make_task(run.id, 0, now, layer=early.id)
    await store.create_run(run, [task], [late, early, mid])

    assert await store.get_layers(run.id) == [early, mid, late]
    assert await store.get_layer(mid.id) == mid
    assert (await store.get_task(task.id)).layer == early.id
    assert await store.get_layers(new_id()) == []
    with pytest.raises(NotFound):
        await store.get_layer("nope")

    values = {"status": "completed", "finished_at": now, "paused": False}
    changes = [LayerChange(early.id, 1, values), LayerChange(mid.id, 9, {"status": "running"})]
    assert await store.update_layers(changes) == [early.id]
    done = await store.get_layer(early.id)
    assert (done.status, done.finished_at, done.version) == ("completed", now, 2)
    assert (await store.get_layer(mid.id)).status == "pending"
    assert await store.update_layers([LayerChange(early.id, 1, {"status": "failed"})]) == []
    assert await store.update_layers([]) == []
    # a priority change reorders the run's layers
    assert await store.update_layers([LayerChange(late.id, 1, {"priority": -1})]) == [late.id]
    assert [x.name for x in await store.get_layers(run.id)] == ["late", "early", "mid"]


async def test_concurrent_layer_updates_one_wins(store: Store) -> None:
    now = await store.now()
    run = make_run(now)
    layer = LayerRecord(new_id(), run.id, "only", 0, "pending", now)
    await store.create_run(run, [], [layer])
    results = await asyncio.gather(
        *(store.update_layers([LayerChange(layer.id, 1, {"error": str(i)})]) for i in range(8))
    )
    assert sum(len(r) for r in results) == 1
    assert (await store.get_layer(layer.id)).version == 2


# -- fan-out ------------------------------------------------------------------------------
async def test_expand_task_children_and_light_state(store: Store) -> None:
    run, (parent,) = await seed(store, 1, status="running")
    now = await store.now()
    children = [
        make_task(run.id, 10 + i, now, task_id=new_id(), parent_id=parent.id) for i in (2, 0, 1)
    ]
    stale = TaskChange(parent.id, parent.version + 5, {"status": "completed"})
    assert await store.expand_task(stale, children) is False
    assert await store.get_children(parent.id) == []
    assert len(await store.get_tasks(run.id)) == 1

    change = TaskChange(parent.id, parent.version, {"output": {"count": 3}})
    assert await store.expand_task(change, children) is True
    got = await store.get_children(parent.id)
    assert [c.seq for c in got] == [10, 11, 12]
    assert {c.id for c in got} == {c.id for c in children}
    assert all(c.parent_id == parent.id for c in got)
    assert (await store.get_task(parent.id)).version == parent.version + 1
    # the children are ordinary queued tasks
    claimed = await store.claim_next("default", 10, "w1", 30)
    assert sorted(t.seq for t, _ in claimed) == [10, 11, 12]

    _, states, _ = await store.load_run_state(run.id, with_outputs=False)
    assert all(set(s) == set(LIGHT_TASK_FIELDS) for s in states)
    by_id = {s["id"]: s for s in states}
    assert by_id[parent.id]["parent_id"] is None
    assert all(by_id[c.id]["parent_id"] == parent.id for c in children)


async def test_delete_tasks_removes_attempts_logs_and_claims(store: Store) -> None:
    run, (parent,) = await seed(store, 1, status="running")
    now = await store.now()
    kids = [make_task(run.id, 1 + i, now, parent_id=parent.id) for i in range(3)]
    assert await store.expand_task(TaskChange(parent.id, parent.version, {}), kids)
    ((ran, attempt),) = await store.claim([kids[0].id], "w1", 30)
    await store.append_logs([NewLog(run.id, ran.id, attempt.id, "stdout", "hello")])

    await store.delete_tasks([kids[0].id, kids[1].id, "nope"])
    assert [c.id for c in await store.get_children(parent.id)] == [kids[2].id]
    assert {t.id for t in await store.get_tasks(run.id)} == {parent.id, kids[2].id}
    assert await store.get_attempts(run.id) == []
    assert await store.read_logs(kids[0].id) == []
    assert await store.live_attempts([attempt.id]) == []
    assert await store.renew_leases([attempt.id], 30) == []
    with pytest.raises(NotFound):
        await store.get_task(kids[1].id)
    assert [t.id for t, _ in await store.claim_next("default", 5, "w1", 30)] == [kids[2].id]
    await store.delete_tasks([])


# -- deadlines ----------------------------------------------------------------------------
async def test_overdue_run_ids(store: Store) -> None:
    now = await store.now()
    past, future = now - timedelta(minutes=5), now + timedelta(minutes=5)
    late = make_run(now, deadline_at=past)
    later = make_run(now, deadline_at=past - timedelta(minutes=1), status="paused")
    early = make_run(now, deadline_at=future)
    done = make_run(now, deadline_at=past, status="completed", finished_at=now)
    plain = make_run(now)
    for run in (late, later, early, done, plain):
        await store.create_run(run, [])
    assert await store.overdue_run_ids(now) == [later.id, late.id]
    assert await store.overdue_run_ids(now, limit=1) == [later.id]
    assert (await store.get_run(late.id)).deadline_at == past

    moved = await store.update_run(late.id, 1, {"status": "failed", "finished_at": now})
    assert moved is not None
    assert await store.overdue_run_ids(now) == [later.id]
    assert await store.update_run(early.id, 1, {"deadline_at": past})
    assert set(await store.overdue_run_ids(now)) == {later.id, early.id}
    assert await store.overdue_run_ids(future + timedelta(minutes=1)) != []


async def test_prune_removes_layers_and_children(store: Store) -> None:
    now = await store.now()
    run = make_run(now, status="completed", finished_at=now - timedelta(hours=2))
    layer = LayerRecord(new_id(), run.id, "l", 0, "completed", now)
    parent = make_task(run.id, 0, now, status="completed")
    await store.create_run(run, [parent], [layer])
    kid = make_task(run.id, 1, now, status="completed", parent_id=parent.id)
    assert await store.expand_task(TaskChange(parent.id, 1, {}), [kid])
    assert await store.prune_runs(now - timedelta(hours=1)) == 1
    assert await store.get_layers(run.id) == []
    assert await store.get_children(parent.id) == []
    with pytest.raises(NotFound):
        await store.get_layer(layer.id)
