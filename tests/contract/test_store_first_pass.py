"""A native run whose first pass is made as it is created (engine/first_pass.py), on every
store: written started with its first tasks queued, claimable at once, its doorbells rung."""

from __future__ import annotations

import asyncio
import contextlib

from treadle.broker.base import COORDINATOR_QUEUE
from treadle.broker.memory import MemoryBroker
from treadle.engine.runs import RunOptions, create_run
from treadle.store.base import Store

CHAIN = {
    "name": "two-steps",
    "tasks": [
        {"name": "first", "kind": "log", "message": "hi {{ inputs.who }}"},
        {"name": "second", "kind": "noop"},
    ],
    "inputs": {"who": {"default": "world"}},
}


async def bodies(broker: MemoryBroker, queue: str) -> list[str]:
    """What waits on ``queue`` now (nothing: an empty list)."""
    got: list[str] = []

    async def drain() -> None:
        async for delivery in broker.consume(queue, prefetch=100):
            got.append(delivery.body)
            await delivery.ack()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drain(), 0.2)
    return got


async def test_a_native_run_is_written_started_and_its_first_task_is_claimable(
    store: Store,
) -> None:
    broker = MemoryBroker()
    await broker.connect()
    run = await create_run(store, broker, CHAIN, {}, RunOptions(), queue_rates={})
    stored = await store.get_run(run.id)
    assert (run.status, stored.status, stored.version) == ("running", "running", 2)
    tasks = {t.name: t for t in await store.get_tasks(run.id)}
    assert (tasks["first"].status, tasks["first"].version) == ("queued", 2)
    assert tasks["first"].rendered is not None
    assert tasks["first"].rendered["message"] == "hi world"
    assert tasks["second"].status == "pending"
    kinds = [e.kind for e in await store.list_events(run.id)]
    assert kinds == ["run.created", "run.started"]
    # Its doorbell rang on the task's queue; the coordinator was not asked for anything.
    assert await bodies(broker, "default") == [tasks["first"].id]
    assert await bodies(broker, COORDINATOR_QUEUE) == []
    # Already announced: the due-task sweep does not ring it again, and a worker claims it.
    now = await store.now()
    assert await store.due_tasks(now, now.replace(year=2000), 10) == []
    (claimed, _), *_ = await store.claim_next("default", 1, "w1", 30)
    assert claimed.id == tasks["first"].id
    await broker.close()


async def test_without_known_rate_limits_the_coordinator_starts_it(store: Store) -> None:
    broker = MemoryBroker()
    await broker.connect()
    run = await create_run(store, broker, CHAIN, {}, RunOptions())
    assert (await store.get_run(run.id)).status == "pending"
    assert {t.status for t in await store.get_tasks(run.id)} == {"pending"}
    assert await bodies(broker, COORDINATOR_QUEUE) == [run.id]
    assert await bodies(broker, "default") == []
    await broker.close()
