"""Doorbells rung again (Coordinator.ring_due): only as many as workers could answer now.

A queued task whose doorbell rang more than ``redeliver_after`` ago is rung again in case the
bell was lost; behind a backlog the bell is only waiting in the broker, so a queue whose
workers report every slot busy gets none rung again. On SQLite and PostgreSQL, with the
in-process broker.
"""

from __future__ import annotations

from datetime import timedelta

from tests.integration.conftest import BOTH_STORES
from treadle.engine.coordinator import Coordinator, CoordinatorSettings
from treadle.engine.service import EngineService
from treadle.store.records import TaskChange, WorkerRecord

pytestmark = BOTH_STORES
TASKS = 3


async def test_rings_again_only_for_free_slots(bare_service: EngineService) -> None:
    service = bare_service
    store, broker = service.store, service.broker
    doc = {
        "name": "backlog",
        "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(TASKS)],
    }
    run = await service.start_run(doc)  # queued, their doorbells rung at once
    now = await store.now()
    tasks = await store.get_tasks(run.id)
    assert {t.status for t in tasks} == {"queued"}
    long_ago = now - timedelta(seconds=60)
    await store.update_tasks(
        [
            TaskChange(t.id, t.version, {"published_at": long_ago, "available_at": long_ago})
            for t in tasks
        ]
    )
    coordinator = Coordinator(store, broker, CoordinatorSettings(redeliver_after=15.0))

    async def worker(in_flight: int, status: str = "alive") -> None:
        await store.upsert_worker(
            WorkerRecord("w1", "host", {"default": 2}, now, await store.now(), status, in_flight)
        )

    async def ring_with(in_flight: int, status: str = "alive") -> int:
        await worker(in_flight, status)
        rung = await coordinator.ring_due()
        # Ring the same bells again next time: put them back 60 s in the past.
        fresh = await store.get_tasks(run.id)
        await store.update_tasks(
            [TaskChange(t.id, t.version, {"published_at": long_ago}) for t in fresh]
        )
        return rung

    assert await ring_with(in_flight=2) == 0  # every slot busy: the bells are waiting
    assert await ring_with(in_flight=1) == 1  # one free slot: one bell again
    assert await ring_with(in_flight=0) == 2  # the worker's whole queue
    # Nobody alive serves the queue: every due bell rings again, as before.
    assert await ring_with(in_flight=0, status="stopping") == TASKS
    # A first bell (the task's backoff ended after its last bell) always rings.
    await worker(2)
    fresh = await store.get_tasks(run.id)
    later = await store.now()
    await store.update_tasks([TaskChange(fresh[0].id, fresh[0].version, {"available_at": later})])
    assert await coordinator.ring_due() == 1
