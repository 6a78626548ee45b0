"""The coordinator's sweep advances a run with finished, unsettled tasks only at its second
sighting, so it does not race the pass a worker makes right after its report. On SQLite and
PostgreSQL, with the in-process broker.
"""

from __future__ import annotations

from tests.integration.conftest import BOTH_STORES
from treadle.engine.coordinator import Coordinator, CoordinatorSettings
from treadle.engine.service import EngineService
from treadle.model.states import AttemptStatus, TaskStatus
from treadle.store.records import AttemptOutcome

pytestmark = BOTH_STORES


async def test_sweep_advances_a_run_unsettled_at_two_sweeps(bare_service: EngineService) -> None:
    service = bare_service
    store, broker = service.store, service.broker
    doc = {"name": "pair", "tasks": [{"name": "a", "kind": "noop"}, {"name": "b"}]}
    doc["tasks"][1]["kind"] = "noop"
    run = await service.start_run(doc)  # a queued, b pending behind it
    ((task, attempt),) = await store.claim_next("default", 1, "w1", 30.0)
    assert task.name == "a"
    completed = TaskStatus.COMPLETED.value
    outcome = AttemptOutcome(attempt.id, task.id, AttemptStatus.COMPLETED.value, completed)
    # Reported, and no pass yet: what a sweep finds between a report and its pass.
    assert await store.finish_attempts([outcome]) == [attempt.id]
    assert await store.unsettled_run_ids() == [run.id]
    coordinator = Coordinator(store, broker, CoordinatorSettings())

    async def statuses() -> dict[str, str]:
        return {t.name: t.status for t in await store.get_tasks(run.id)}

    await coordinator.sweep()
    assert await statuses() == {"a": completed, "b": TaskStatus.PENDING.value}
    assert await store.unsettled_run_ids() == [run.id]
    await coordinator.sweep()
    assert await statuses() == {"a": completed, "b": TaskStatus.QUEUED.value}
    assert await store.unsettled_run_ids() == []
