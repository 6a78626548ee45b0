"""Flower's flow control: at most N flows run at once; the others wait their turn.

A registered flow is created ``paused`` with ``labels.flower.waiting = true`` (so the
coordinator leaves it alone) and admitted while fewer than the limit of Flower flows are pending
or running. Waiting flows are admitted by the priority of the task each would run first (its
``task_priority``, lower numbers first, as Flower's watcher orders them), then oldest first.

Admission is a compare-and-set on the run, so two API processes admitting at once cannot both
start the same flow (under such a race the limit may be passed by the number of concurrent
admitters, never more).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE
from treadle.engine.service import EngineService, new_id
from treadle.model.parse import definition_from_document
from treadle.model.states import RunStatus
from treadle.store.records import RunRecord

log = logging.getLogger(__name__)

LABEL = "flower"
DEFAULT_MAX_FLOWS = 5


async def register_flow(service: EngineService, task_id: str, max_flows: int) -> RunRecord:
    """Create a flow (a run) of the definition ``task_id``; it starts when a slot is free.

    Raises NotFound for an unknown definition. ``max_flows`` 0 means no limit.
    """
    record = await service.store.get_definition(task_id)
    model = definition_from_document(record.document)
    document = model.to_document()
    document.setdefault("version", model.version)
    now = await service.store.now()
    limited = max_flows > 0
    run = RunRecord(
        id=new_id(),
        definition_name=model.name,
        definition_version=int(document["version"]),
        definition=document,
        status=(RunStatus.PAUSED if limited else RunStatus.PENDING).value,
        inputs={},
        created_at=now,
        dialect="flower",
        labels={LABEL: {"task_id": task_id, "waiting": limited}},
    )
    tasks = service.build_tasks(run.id, model, document, now)
    await service.store.create_run(run, tasks)
    await service.store.add_event(
        run.id,
        "run.created",
        "flower",
        {"definition": model.name, "version": run.definition_version, "waiting": limited},
    )
    if limited:
        await admit(service, max_flows)
    else:
        await service.broker.publish(COORDINATOR_QUEUE, [run.id])
    return run


def head_priority(run: RunRecord) -> int:
    """The native priority of the task a waiting flow runs first (its first ``task_seq``)."""
    tasks = run.definition.get("tasks")
    first = tasks[0] if isinstance(tasks, list) and tasks else None
    value = first.get("priority", 0) if isinstance(first, dict) else 0
    return value if isinstance(value, int) else 0


def admission_order(waiting: list[RunRecord]) -> list[RunRecord]:
    """Highest native priority (lowest Flower ``task_priority``) first, then oldest first."""
    return sorted(waiting, key=lambda r: (-head_priority(r), r.created_at, r.id))


def _is_flower(run: RunRecord) -> bool:
    return isinstance(run.labels.get(LABEL), dict)


def _waiting(run: RunRecord) -> bool:
    label = run.labels.get(LABEL)
    return isinstance(label, dict) and bool(label.get("waiting"))


async def _runs(service: EngineService, status: str) -> list[RunRecord]:
    found: list[RunRecord] = []
    cursor: str | None = None
    while True:
        page, cursor = await service.store.list_runs(status=status, limit=500, cursor=cursor)
        found.extend(r for r in page if _is_flower(r))
        if cursor is None:
            return found


async def admit(service: EngineService, max_flows: int) -> int:
    """Start waiting flows in :func:`admission_order` while fewer than ``max_flows`` run."""
    waiting = [r for r in await _runs(service, RunStatus.PAUSED.value) if _waiting(r)]
    if not waiting:
        return 0
    active = 0
    if max_flows > 0:
        for status in (RunStatus.PENDING.value, RunStatus.RUNNING.value):
            active += len(await _runs(service, status))
    admitted = 0
    for run in admission_order(waiting):
        if max_flows > 0 and active >= max_flows:
            break
        label: dict[str, Any] = {**run.labels.get(LABEL, {}), "waiting": False}
        updated = await service.store.update_run(
            run.id,
            run.version,
            {"status": RunStatus.PENDING.value, "labels": {**run.labels, LABEL: label}},
        )
        if updated is None:
            continue  # cancelled or admitted by someone else meanwhile
        await service.store.add_event(run.id, "run.admitted", "flower", {"active": active})
        await service.broker.publish(COORDINATOR_QUEUE, [run.id])
        active += 1
        admitted += 1
    return admitted


async def admission_loop(service: EngineService, max_flows: int, interval: float = 0.5) -> None:
    """Admit waiting flows as running ones finish (runs until cancelled)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await admit(service, max_flows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store may be briefly away; try again next tick
            log.warning("flower flow admission: %s", exc)
