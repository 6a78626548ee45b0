"""Durable waits: the ``wait`` kind and run signals.

A wait task is never given to a worker. When the scheduler queues one, the coordinator *parks*
it: the task moves to ``running`` and a wait row records its wake-up time or the signal it
waits for. The coordinators' timer loops complete due timers and deliver stored signals, so a
wait survives restarts of every process, and a signal sent before its wait started is kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE, Broker
from treadle.errors import DefinitionError, InvalidState
from treadle.model.durations import parse_duration
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.base import Store
from treadle.store.records import TaskChange, TaskRecord
from treadle.store.trigger_records import SignalRecord, WaitRecord

log = logging.getLogger(__name__)

WAIT_KIND = "wait"
SIGNAL_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def is_wait(task: TaskRecord) -> bool:
    return task.spec.get("kind") == WAIT_KIND


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"`until` is not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def plan_wait(task: TaskRecord, spec: Mapping[str, Any], now: datetime) -> WaitRecord:
    """The wait row for ``task`` (rendered ``spec``) parked at ``now``; ValueError if bad."""
    timeout = spec.get("timeout")
    deadline = now + timedelta(seconds=float(timeout)) if timeout else None
    signal = spec.get("signal")
    if signal is not None:
        name = str(signal)
        if not SIGNAL_NAME.match(name):
            raise ValueError(f"bad signal name {name!r}: use letters, digits and _ . : -")
        return WaitRecord(task.id, task.run_id, now, deadline, name, "fail")
    if spec.get("until") is not None:
        wake = parse_instant(spec["until"])
    else:
        raw = spec.get("seconds") if spec.get("seconds") is not None else spec.get("duration")
        if raw is None:
            raise ValueError("a wait needs `until`, `seconds` (or `duration`) or `signal`")
        wake = now + timedelta(seconds=parse_duration(raw))
    output = {"until": wake.isoformat()}
    if deadline is not None and deadline < wake:
        return WaitRecord(task.id, task.run_id, now, deadline, None, "fail", output)
    return WaitRecord(task.id, task.run_id, now, wake, None, "complete", output)


def signal_output(payload: Any) -> dict[str, Any]:
    """A task output is an object: a JSON object payload is used as is, others are wrapped."""
    if payload is None:
        return {}
    if isinstance(payload, dict):
        return payload
    return {"value": payload}


class Waits:
    """Parks wait tasks and wakes them; used by the coordinator (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def park(self, tasks: Sequence[TaskRecord]) -> set[str]:
        """Park queued wait tasks; return the runs that changed and must be advanced."""
        now = await self.store.now()
        plans: list[WaitRecord] = []
        failures: list[TaskChange] = []
        for stale in tasks:
            task = await self.store.get_task(stale.id)
            if task.status != TaskStatus.QUEUED:
                continue
            try:
                plans.append(plan_wait(task, task.rendered or task.spec, now))
            except (ValueError, TypeError) as exc:
                failures.append(
                    TaskChange(
                        task.id,
                        task.version,
                        {
                            "status": TaskStatus.FAILED.value,
                            "finished_at": now,
                            "settled": False,
                            "error": str(exc),
                        },
                    )
                )
        failed = set(await self.store.update_tasks(failures))
        won = set(await self.store.park_waits(plans))
        runs = {t.run_id for t in tasks if t.id in failed}
        for plan in plans:
            if plan.task_id in won:
                log.info(
                    "task parked until %s%s",
                    plan.wake_at.isoformat() if plan.wake_at else "-",
                    f" or signal {plan.signal!r}" if plan.signal else "",
                    extra={"run_id": plan.run_id, "task_id": plan.task_id},
                )
        signal_runs = {p.run_id for p in plans if p.signal and p.task_id in won}
        for run_id in signal_runs:
            runs |= await self.deliver(run_id)
        return runs

    async def deliver(self, run_id: str | None = None) -> set[str]:
        """Hand stored signals to the waits that want them; return the runs that changed."""
        runs: set[str] = set()
        for wait, signal in await self.store.signal_matches(run_id):
            if await self.store.finish_wait(
                wait.task_id,
                TaskStatus.COMPLETED.value,
                signal_output(signal.payload),
                None,
                signal.id,
            ):
                runs.add(wait.run_id)
        return runs

    async def wake_due(self) -> set[str]:
        """Complete due timers, fail signal waits past their timeout, deliver signals."""
        now = await self.store.now()
        runs: set[str] = set()
        for wait in await self.store.due_waits(now):
            if wait.on_wake == "complete":
                output = dict(wait.output or {})
                output["woke_at"] = now.isoformat()
                done = await self.store.finish_wait(
                    wait.task_id, TaskStatus.COMPLETED.value, output
                )
            else:
                reason = (
                    f"timed out waiting for signal {wait.signal!r}"
                    if wait.signal
                    else "timed out before the wait ended"
                )
                done = await self.store.finish_wait(
                    wait.task_id, TaskStatus.FAILED.value, wait.output, reason
                )
            if done:
                runs.add(wait.run_id)
        runs |= await self.deliver()
        return runs


async def send_signal(
    store: Store, broker: Broker, run_id: str, name: str, payload: Any
) -> tuple[SignalRecord, list[str]]:
    """Store a signal for ``run_id`` and wake the wait(s) it satisfies now.

    Returns the stored signal and the names of tasks it completed (empty when no wait is
    waiting yet: the signal is kept for the first one that starts).
    """
    if not SIGNAL_NAME.match(name):
        raise DefinitionError(f"bad signal name {name!r}: use letters, digits and _ . : -")
    run = await store.get_run(run_id)
    if RunStatus(run.status).terminal:
        raise InvalidState(f"run {run_id!r} is already {run.status}; it takes no signals")
    signal = await store.add_signal(run_id, name, payload)
    await store.add_event(run_id, "run.signal", "api", {"name": name, "id": signal.id})
    woken = await Waits(store).deliver(run_id)
    # A coordinator's timer may have delivered it meanwhile: ask the store who took it.
    completed: list[str] = []
    for record in await store.list_signals(run_id):
        if record.id == signal.id and record.consumed_by:
            completed.append((await store.get_task(record.consumed_by)).name)
    if woken or completed:
        await broker.publish(COORDINATOR_QUEUE, [run_id])
    return signal, completed
