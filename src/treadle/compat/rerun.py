"""Run a finished run again from one task on (used by Flower's rerun and Tork's restart).

Tasks from the given position on go back to ``pending`` with compare-and-set writes; the tasks
before it keep their results. Then the run goes back to ``running`` and the coordinator is told,
so it dispatches the reset tasks as usual.

``attempt_count`` is kept: attempt ids derive from it, so the attempts of a rerun continue the
numbering (and a task's retry budget counts the attempts it already used).
"""

from __future__ import annotations

from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE
from treadle.engine.service import EngineService
from treadle.errors import Conflict, InvalidState, NotFound
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.records import RunRecord, TaskChange, TaskRecord

_RESET: dict[str, Any] = {
    "status": TaskStatus.PENDING.value,
    "rendered": None,
    "output": None,
    "error": None,
    "attempt_id": None,
    "queued_at": None,
    "available_at": None,
    "published_at": None,
    "started_at": None,
    "finished_at": None,
    "settled": False,
}
_DONE_OK = {TaskStatus.COMPLETED.value, TaskStatus.SKIPPED.value}


async def rerun_from(
    service: EngineService, run_id: str, from_seq: int, actor: str = "api"
) -> RunRecord:
    """Reset the tasks of ``run_id`` with ``seq >= from_seq`` (0-based) and resume the run."""
    run = await service.store.get_run(run_id)
    if not RunStatus(run.status).terminal:
        raise InvalidState(f"run {run_id!r} is still {run.status}; rerun it once it has finished")
    tasks = await service.store.get_tasks(run_id)
    if not any(t.seq >= from_seq for t in tasks):
        raise NotFound(f"run {run_id!r} has no task at position {from_seq + 1}")
    _check_upstream(tasks, from_seq)
    changes = [
        TaskChange(t.id, t.version, dict(_RESET))
        for t in tasks
        if t.seq >= from_seq and t.status != TaskStatus.PENDING.value
    ]
    won = await service.store.update_tasks(changes)
    if len(won) != len(changes):
        raise Conflict(f"run {run_id!r} changed meanwhile; try again")
    values = {"status": RunStatus.RUNNING.value, "finished_at": None, "error": None, "output": None}
    for _ in range(5):
        updated = await service.store.update_run(run.id, run.version, values)
        if updated is not None:
            break
        run = await service.store.get_run(run_id)
    else:
        raise Conflict(f"run {run_id!r} changed meanwhile; try again")
    await service.store.add_event(run_id, "run.rerun", actor, {"from_position": from_seq + 1})
    await service.broker.publish(COORDINATOR_QUEUE, [run_id])
    return updated


def _check_upstream(tasks: list[TaskRecord], from_seq: int) -> None:
    """Tasks kept as they are must have succeeded, or the reset ones could never run."""
    by_name = {t.name: t for t in tasks}
    for task in tasks:
        if task.seq < from_seq:
            continue
        for dep_name in task.depends_on:
            dep = by_name.get(dep_name)
            if dep is not None and dep.seq < from_seq and dep.status not in _DONE_OK:
                raise InvalidState(
                    f"task {dep.name!r} (position {dep.seq + 1}) is {dep.status}; "
                    f"rerun from position {dep.seq + 1} or earlier"
                )
