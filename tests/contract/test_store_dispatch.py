"""The Store contract, part 2: dispatch, claims, leases and fencing, on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from tests.contract.store_records import make_run, make_task, seed
from treadle.store.base import Store
from treadle.store.records import AttemptOutcome, TaskChange
from treadle.store.stats import StoreStats

FAR = timedelta(days=1)


async def expire_soon(store: Store, task_id: str) -> str:
    """Claim ``task_id`` with a lease that runs out at once; return the attempt id."""
    ((_, attempt),) = await store.claim([task_id], "w-short", 0.05)
    await asyncio.sleep(0.15)
    return attempt.id


# -- due tasks and doorbells --------------------------------------------------------------
async def test_due_tasks_order_and_filters(store: Store) -> None:
    now = await store.now()
    run = make_run(now)
    tasks = [
        make_task(run.id, 0, now, available_at=now - timedelta(seconds=30), priority=0),
        make_task(run.id, 1, now, available_at=now - timedelta(seconds=10), priority=5),
        make_task(run.id, 2, now, available_at=now - timedelta(seconds=20), priority=5),
        make_task(run.id, 3, now, available_at=now + timedelta(seconds=60), priority=9),
        make_task(run.id, 4, now, status="pending"),
        make_task(run.id, 5, now, status="running", available_at=now - timedelta(seconds=5)),
        make_task(run.id, 6, now, available_at=now - timedelta(seconds=40), priority=-2),
    ]
    await store.create_run(run, tasks)
    past = now - FAR
    due = await store.due_tasks(now, past, 10)
    assert [t.seq for t in due] == [2, 1, 0, 6]
    assert [t.seq for t in await store.due_tasks(now, past, 2)] == [2, 1]
    later = now + timedelta(seconds=61)
    assert [t.seq for t in await store.due_tasks(later, past, 10)] == [3, 2, 1, 0, 6]


async def test_due_tasks_span_queues_best_first(store: Store) -> None:
    """The sweep takes the best ``limit`` due tasks of all queues together, and a queue
    holding only running or future tasks gives none."""
    now = await store.now()
    run = make_run(now)
    ago = [now - timedelta(seconds=s) for s in range(10)]
    tasks = [
        make_task(run.id, 0, now, queue="a", available_at=ago[5], priority=1),
        make_task(run.id, 1, now, queue="b", available_at=ago[9], priority=1),
        make_task(run.id, 2, now, queue="c", available_at=ago[1], priority=7),
        make_task(run.id, 3, now, queue="a", available_at=ago[8], priority=0),
        make_task(run.id, 4, now, queue="b", available_at=ago[2], priority=3),
        make_task(run.id, 5, now, queue="d", status="running", available_at=ago[3]),
        make_task(run.id, 6, now, queue="e", available_at=now + FAR, priority=9),
    ]
    await store.create_run(run, tasks)
    past = now - FAR
    assert [t.seq for t in await store.due_tasks(now, past, 10)] == [2, 4, 1, 0, 3]
    assert [t.seq for t in await store.due_tasks(now, past, 3)] == [2, 4, 1]
    assert [t.queue for t in await store.due_tasks(now, past, 2)] == ["c", "b"]


# The SQL stores only: the Redis store offers no queue depths (store/stats.py; the UI says so).
@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_queue_depths_count_queued_and_running_per_queue(store: Store) -> None:
    assert isinstance(store, StoreStats)
    now = await store.now()
    run = make_run(now)
    statuses = [("a", "queued"), ("a", "queued"), ("a", "running"), ("b", "running")]
    statuses += [("c", "succeeded"), ("c", "pending"), ("d", "queued")]
    tasks = [
        make_task(run.id, seq, now, queue=queue, status=status)
        for seq, (queue, status) in enumerate(statuses)
    ]
    await store.create_run(run, tasks)
    assert await store.queue_depths() == {
        "a": {"queued": 2, "running": 1},
        "b": {"queued": 0, "running": 1},
        "d": {"queued": 1, "running": 0},
    }


async def test_mark_published_and_redeliver(store: Store) -> None:
    _, tasks = await seed(store, 3)
    now = await store.now()
    ids = [t.id for t in tasks]
    await store.mark_published(ids[:2], now)
    assert [t.id for t in await store.due_tasks(now, now - FAR, 10)] == [ids[2]]
    assert (await store.get_task(ids[0])).published_at == now
    # a doorbell rung before redeliver_before is rung again
    redue = await store.due_tasks(now + timedelta(seconds=5), now + timedelta(seconds=1), 10)
    assert sorted(t.id for t in redue) == sorted(ids)
    # re-queued after its doorbell (published before available): due again at once
    task = await store.get_task(ids[0])
    later = now + timedelta(seconds=2)
    assert await store.update_tasks([TaskChange(task.id, task.version, {"available_at": later})])
    due = await store.due_tasks(later, now - FAR, 10)
    assert sorted(t.id for t in due) == sorted([ids[0], ids[2]])
    await store.mark_published([], now)


# -- claims -------------------------------------------------------------------------------
async def test_claim_takes_only_queued_due_tasks(store: Store) -> None:
    now = await store.now()
    run = make_run(now)
    ready = make_task(run.id, 0, now, available_at=now - timedelta(seconds=1))
    future = make_task(run.id, 1, now, available_at=now + timedelta(minutes=5))
    pending = make_task(run.id, 2, now, status="pending")
    await store.create_run(run, [ready, future, pending])

    claimed = await store.claim([future.id, pending.id, ready.id, "nope"], "w1", 30)
    assert len(claimed) == 1
    task, attempt = claimed[0]
    assert task.id == ready.id and task.status == "running"
    assert task.attempt_id == attempt.id and task.attempt_count == 1
    assert task.version == ready.version + 1
    assert (attempt.task_id, attempt.run_id, attempt.number) == (ready.id, run.id, 1)
    assert (attempt.status, attempt.worker_id) == ("running", "w1")
    lease = attempt.lease_expires_at - attempt.started_at
    assert timedelta(seconds=29) < lease <= timedelta(seconds=31)
    assert await store.get_task(ready.id) == task
    assert await store.get_attempts(run.id) == [attempt]

    assert await store.claim([ready.id], "w2", 30) == []
    assert await store.claim([], "w2", 30) == []
    assert (await store.get_task(future.id)).status == "queued"
    assert (await store.get_task(pending.id)).status == "pending"


async def test_many_concurrent_claims_make_one_attempt(store: Store) -> None:
    run, tasks = await seed(store, 1)
    results = await asyncio.gather(*(store.claim([tasks[0].id], f"w{i}", 30) for i in range(25)))
    assert sum(len(r) for r in results) == 1
    attempts = await store.get_attempts(run.id)
    assert len(attempts) == 1
    winner = next(r for r in results if r)[0][1]
    assert attempts[0] == winner
    assert (await store.get_task(tasks[0].id)).attempt_id == winner.id


async def test_overlapping_batches_claim_each_task_once(store: Store) -> None:
    run, tasks = await seed(store, 12)
    ids = [t.id for t in tasks]
    batches = [ids, ids[::-1], ids[3:] + ids[:3], ids[::2], ids[1::2]]
    results = await asyncio.gather(*(store.claim(b, f"w{i}", 30) for i, b in enumerate(batches)))
    claimed = [task.id for r in results for task, _ in r]
    assert sorted(claimed) == sorted(ids)
    assert len(await store.get_attempts(run.id)) == 12


# -- finishing and fencing ----------------------------------------------------------------
async def test_finish_attempt_completes_the_task(store: Store) -> None:
    run, tasks = await seed(store, 1)
    ((_, attempt),) = await store.claim([tasks[0].id], "w1", 30)
    outcome = AttemptOutcome(attempt.id, tasks[0].id, "completed", "completed", {"rows": 3})
    assert await store.finish_attempts([outcome]) == [attempt.id]
    task = await store.get_task(tasks[0].id)
    assert (task.status, task.output, task.settled) == ("completed", {"rows": 3}, False)
    assert task.finished_at is not None and task.finished_at >= attempt.started_at
    (done,) = await store.get_attempts(run.id)
    assert (done.status, done.output, done.finished_at) == (
        "completed",
        {"rows": 3},
        task.finished_at,
    )
    # the same report twice changes nothing the second time
    failed = AttemptOutcome(attempt.id, tasks[0].id, "failed", "failed", error="late")
    assert await store.finish_attempts([failed]) == []
    assert await store.get_task(tasks[0].id) == task
    assert await store.finish_attempts([]) == []


async def test_stale_attempt_is_fenced_off(store: Store) -> None:
    run, tasks = await seed(store, 1)
    task_id = tasks[0].id
    stale = await expire_soon(store, task_id)
    (requeued,) = await store.expire_leases(delivery_limit=5)
    assert requeued.id == task_id and requeued.status == "queued"
    ((_, current),) = await store.claim([task_id], "w2", 30)
    assert current.number == 2

    before = await store.get_task(task_id)
    late = AttemptOutcome(stale, task_id, "completed", "completed", {"late": True})
    assert await store.finish_attempts([late]) == []
    assert await store.get_task(task_id) == before
    statuses = {a.id: a.status for a in await store.get_attempts(run.id)}
    assert statuses == {stale: "lost", current.id: "running"}

    ok = AttemptOutcome(current.id, task_id, "completed", "completed", "fine")
    assert await store.finish_attempts([late, ok]) == [current.id]
    assert (await store.get_task(task_id)).output == "fine"


async def test_retry_outcome_waits_for_its_time(store: Store) -> None:
    run, tasks = await seed(store, 1)
    task_id = tasks[0].id
    ((_, first),) = await store.claim([task_id], "w1", 30)
    await store.mark_published([task_id], await store.now())
    retry_at = await store.now() + timedelta(seconds=60)
    outcome = AttemptOutcome(first.id, task_id, "failed", "queued", error="boom", retry_at=retry_at)
    assert await store.finish_attempts([outcome]) == [first.id]
    task = await store.get_task(task_id)
    assert (task.status, task.available_at, task.published_at) == ("queued", retry_at, None)
    assert task.error == "boom" and task.finished_at is None

    now = await store.now()
    assert await store.due_tasks(now, now - FAR, 10) == []
    assert await store.claim([task_id], "w1", 30) == []
    due = await store.due_tasks(retry_at + timedelta(seconds=1), now - FAR, 10)
    assert [t.id for t in due] == [task_id]

    # after the wait a claim makes attempt number 2
    assert await store.update_tasks([TaskChange(task_id, task.version, {"available_at": now})])
    ((claimed, second),) = await store.claim([task_id], "w1", 30)
    assert second.number == 2 and claimed.attempt_count == 2
    assert [a.number for a in await store.get_attempts(run.id)] == [1, 2]


async def test_one_report_of_mixed_outcomes(store: Store) -> None:
    """A worker's batched report: each outcome is judged on its own in one call."""
    run, tasks = await seed(store, 5)
    ok, bad, again, killed, stale = tasks
    stale_attempt = await expire_soon(store, stale.id)
    await store.expire_leases(delivery_limit=5)
    claimed = dict(
        (task.id, attempt) for task, attempt in await store.claim([t.id for t in tasks], "w", 30)
    )
    assert sorted(claimed) == sorted(t.id for t in tasks)
    victim = await store.get_task(killed.id)
    assert await store.update_tasks(
        [TaskChange(victim.id, victim.version, {"status": "cancelled"})]
    )
    retry_at = await store.now() + timedelta(seconds=30)

    outcomes = [
        AttemptOutcome(claimed[ok.id].id, ok.id, "completed", "completed", None),
        AttemptOutcome(claimed[bad.id].id, bad.id, "failed", "failed", {"code": 2}, "exit 2"),
        AttemptOutcome(claimed[again.id].id, again.id, "failed", "queued", None, "flaky", retry_at),
        AttemptOutcome(claimed[killed.id].id, killed.id, "completed", "completed", "late"),
        AttemptOutcome(stale_attempt, stale.id, "completed", "completed", "from the lost worker"),
    ]
    accepted = await store.finish_attempts(outcomes)
    # the killed task's attempt is still recorded as ended; the lost attempt is not
    assert sorted(accepted) == sorted(claimed[t.id].id for t in (ok, bad, again, killed))

    by_id = {t.id: t for t in await store.get_tasks(run.id)}
    assert (by_id[ok.id].status, by_id[ok.id].output) == ("completed", None)
    assert (by_id[bad.id].status, by_id[bad.id].output, by_id[bad.id].error) == (
        "failed",
        {"code": 2},
        "exit 2",
    )
    retried = by_id[again.id]
    assert (retried.status, retried.available_at, retried.error) == ("queued", retry_at, "flaky")
    assert retried.finished_at is None and retried.published_at is None
    assert (by_id[killed.id].status, by_id[killed.id].output) == ("cancelled", None)
    assert (by_id[stale.id].status, by_id[stale.id].attempt_id) == ("running", claimed[stale.id].id)
    assert all(not by_id[t.id].settled for t in (ok, bad, again))
    attempts = {a.id: a for a in await store.get_attempts(run.id)}
    assert attempts[claimed[killed.id].id].status == "completed"
    assert attempts[stale_attempt].status == "lost"
    assert attempts[claimed[stale.id].id].status == "running"
    assert attempts[claimed[bad.id].id].output == {"code": 2}


async def test_a_report_claims_for_the_slots_it_frees(store: Store) -> None:
    """finish_and_claim: the outcomes are judged as finish_attempts judges them, and the freed
    slots go to queued, due tasks of the queue, highest priority first, in the same call."""
    now = await store.now()
    run = make_run(now)
    tasks = [
        make_task(run.id, 0, now, priority=1),
        make_task(run.id, 1, now, priority=1),
        make_task(run.id, 2, now, priority=0),
        make_task(run.id, 3, now, priority=7),
        make_task(run.id, 4, now, available_at=now + FAR, priority=9),  # not due
        dataclasses.replace(make_task(run.id, 5, now, priority=8), queue="other"),
    ]
    await store.create_run(run, tasks)
    first, second, low, high, _, _ = tasks
    claimed = dict((t.id, a) for t, a in await store.claim([first.id, second.id], "w", 30))
    stale = AttemptOutcome("no-such-attempt", low.id, "completed", "completed", None)
    outcomes = [
        AttemptOutcome(claimed[first.id].id, first.id, "completed", "completed", {"n": 1}),
        AttemptOutcome(claimed[second.id].id, second.id, "failed", "failed", None, "boom"),
        stale,
    ]
    accepted, taken = await store.finish_and_claim(outcomes, "default", 3, "w", 30)
    assert sorted(accepted) == sorted(a.id for a in claimed.values())
    # Only two tasks of the queue are queued and due: the higher priority comes first.
    assert [t.id for t, _ in taken] == [high.id, low.id]
    assert all(a.worker_id == "w" and a.status == "running" for _, a in taken)
    by_id = {t.id: t for t in await store.get_tasks(run.id)}
    assert [by_id[t.id].status for t in tasks] == [
        "completed",
        "failed",
        "running",
        "running",
        "queued",
        "queued",
    ]
    assert by_id[first.id].output == {"n": 1}
    assert by_id[high.id].attempt_id == taken[0][1].id

    # Nothing to report: a plain claim; a limit of 0: a plain report.
    assert await store.finish_and_claim([], "default", 2, "w", 30) == ([], [])
    done = [AttemptOutcome(a.id, t.id, "completed", "completed", None) for t, a in taken]
    assert sorted((await store.finish_and_claim(done, "default", 0, "w", 30))[0]) == sorted(
        a.id for _, a in taken
    )


# -- leases -------------------------------------------------------------------------------
async def test_renew_leases_returns_only_live_attempts(store: Store) -> None:
    run, tasks = await seed(store, 3)
    claimed = await store.claim([t.id for t in tasks], "w1", 5)
    a, b, c = (attempt for _, attempt in claimed)
    await store.finish_attempts([AttemptOutcome(b.id, b.task_id, "completed", "completed")])
    live = await store.renew_leases([a.id, b.id, c.id, "nope"], 120)
    assert sorted(live) == sorted([a.id, c.id])
    renewed = {x.id: x for x in await store.get_attempts(run.id)}
    assert renewed[a.id].lease_expires_at - a.lease_expires_at > timedelta(seconds=100)

    # the coordinator cancels c's task: its worker must stop
    task_c = await store.get_task(c.task_id)
    change = TaskChange(task_c.id, task_c.version, {"status": "cancelled"})
    assert await store.update_tasks([change]) == [task_c.id]
    assert await store.renew_leases([a.id, c.id], 120) == [a.id]
    assert await store.renew_leases([], 120) == []


async def test_expire_leases_requeues_then_fails_a_poison_task(store: Store) -> None:
    run, tasks = await seed(store, 2)
    poison, healthy = tasks[0].id, tasks[1].id
    await store.claim([healthy], "w-long", 60)

    first = await expire_soon(store, poison)
    changed = await store.expire_leases(delivery_limit=2)
    assert [(t.id, t.status) for t in changed] == [(poison, "queued")]
    assert changed[0] == await store.get_task(poison)
    assert changed[0].published_at is None and changed[0].settled is False
    assert [t.id for t in await store.due_tasks(await store.now(), await store.now(), 10)] == [
        poison
    ]
    assert await store.renew_leases([first], 30) == []

    await expire_soon(store, poison)
    (failed,) = await store.expire_leases(delivery_limit=2)
    assert failed.id == poison and failed.status == "failed"
    assert failed.error is not None and "poison" in failed.error
    assert failed.finished_at is not None
    assert await store.unsettled_run_ids() == [run.id]
    lost = [a for a in await store.get_attempts(run.id) if a.task_id == poison]
    assert [a.status for a in lost] == ["lost", "lost"]
    assert all(a.error and "lease" in a.error for a in lost)
    assert (await store.get_task(healthy)).status == "running"
    assert await store.expire_leases(delivery_limit=2) == []


async def test_concurrent_sweepers_expire_each_attempt_once(store: Store) -> None:
    run, tasks = await seed(store, 10)
    await store.claim([t.id for t in tasks], "w1", 0.05)
    await asyncio.sleep(0.15)
    results = await asyncio.gather(*(store.expire_leases(delivery_limit=5) for _ in range(4)))
    changed = [t.id for r in results for t in r]
    assert sorted(changed) == sorted(t.id for t in tasks)
    assert all(t.status == "queued" and t.version == 3 for t in await store.get_tasks(run.id))
    assert [a.status for a in await store.get_attempts(run.id)] == ["lost"] * 10


async def test_expire_batch_limit(store: Store) -> None:
    _, tasks = await seed(store, 5)
    await store.claim([t.id for t in tasks], "w1", 0.05)
    await asyncio.sleep(0.15)
    assert len(await store.expire_leases(delivery_limit=3, limit=2)) == 2
    assert len(await store.expire_leases(delivery_limit=3, limit=10)) == 3
