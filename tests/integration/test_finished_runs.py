"""A coordinator keeps no copy of a run it saw finish, and answers a late event for it with a
read of the run's row and unsettled tasks only, unless the run was reopened meanwhile. On
SQLite and PostgreSQL, with the in-process broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.conftest import BOTH_STORES
from treadle.engine.coordinator import Coordinator, CoordinatorSettings
from treadle.engine.service import EngineService
from treadle.model.states import AttemptStatus, RunStatus, TaskStatus
from treadle.store.records import AttemptOutcome

pytestmark = BOTH_STORES


def count_calls(store: Any, names: tuple[str, ...]) -> list[str]:
    """Record the calls of these store methods (the real ones still run)."""
    seen: list[str] = []
    for name in names:
        method: Callable[..., Awaitable[Any]] = getattr(store, name)

        async def spy(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            seen.append(_name)
            return await _method(*args, **kw)

        setattr(store, name, spy)
    return seen


async def test_a_late_event_for_a_finished_run_reads_no_tasks(bare_service: EngineService) -> None:
    service = bare_service
    store, broker = service.store, service.broker
    run = await service.start_run({"name": "one", "tasks": [{"name": "a", "kind": "noop"}]})
    ((task, attempt),) = await store.claim_next("default", 1, "w1", 30.0)
    completed = TaskStatus.COMPLETED.value
    outcome = AttemptOutcome(attempt.id, task.id, AttemptStatus.COMPLETED.value, completed)
    assert await store.finish_attempts([outcome]) == [attempt.id]
    coordinator = Coordinator(store, broker, CoordinatorSettings())
    await coordinator.advance([run.id])
    assert (await store.get_run(run.id)).status == RunStatus.COMPLETED.value
    assert coordinator.pass_read(run.id) is None  # no copy kept

    full_reads = count_calls(store, ("get_tasks", "get_tasks_many"))
    await coordinator.advance([run.id])  # a report's event arriving after the last pass
    assert full_reads == []
    assert coordinator.pass_read(run.id) is None

    # Reopened by an operator: the next event is an ordinary pass, which queues the task.
    await service.control.apply("rerun", "task", task.id, None, "test")
    await coordinator.advance([run.id])
    assert full_reads, "a reopened run is read whole"
    (again,) = await store.get_tasks(run.id)
    assert again.status == TaskStatus.QUEUED.value
    assert (await store.get_run(run.id)).status == RunStatus.RUNNING.value
