"""Cron schedules: compute fire times, fire due ticks exactly once, manage schedules.

Every coordinator looks for due schedules on its timer loop. A tick's run gets an id derived
from the schedule and the fire time, so two coordinators firing the same tick create the same
run id and the store keeps one; the schedule row then moves on with a compare-and-set on its
version, which only one of them wins.

Policies: ``overlap`` (previous scheduled run still active) is ``skip`` (no run for the tick),
``queue`` (the run waits in ``pending`` until the previous one ends) or ``allow``; ``catchup``
(ticks missed while no coordinator ran) is ``none`` (only a tick late by at most ``grace``
seconds fires), ``latest`` (the most recent missed tick fires) or ``all``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from treadle.errors import Conflict, DefinitionError, NotFound, TreadleError
from treadle.model.inputs import resolve_inputs
from treadle.model.parse import definition_from_document
from treadle.model.states import RunStatus
from treadle.model.triggers import ScheduleSpec
from treadle.store.base import Store
from treadle.store.records import RunRecord
from treadle.store.trigger_records import ScheduleRecord

log = logging.getLogger(__name__)

MAX_CATCHUP = 1000
SCHEDULE_LABEL = "treadle.schedule"
FIRE_LABEL = "treadle.scheduled_for"
_NAMESPACE = uuid.UUID("6f3a1c52-7d0b-4f55-9d8e-2b1e7c9a4e10")

StartRun = Callable[..., Awaitable[RunRecord]]


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC (cron read in ``timezone``)."""
    local = after.astimezone(ZoneInfo(timezone))
    moment: datetime = croniter(cron, local).get_next(datetime)
    return moment.astimezone(UTC)


def due_ticks(schedule: ScheduleRecord, now: datetime) -> tuple[list[datetime], datetime]:
    """Fire times from ``next_fire_at`` up to ``now`` (capped) and the next one after ``now``."""
    ticks: list[datetime] = []
    moment = schedule.next_fire_at
    while moment is not None and moment <= now:
        ticks.append(moment)
        if len(ticks) > MAX_CATCHUP:
            ticks.pop(0)
        moment = next_fire(schedule.cron, schedule.timezone, moment)
    if moment is None or moment <= now:
        moment = next_fire(schedule.cron, schedule.timezone, now)
    return ticks, moment


def apply_catchup(
    ticks: list[datetime], policy: str, grace: float, now: datetime
) -> list[datetime]:
    """Which due ticks fire under the catch-up ``policy``."""
    if not ticks:
        return []
    if policy == "all":
        return ticks
    latest = ticks[-1]
    if policy == "latest":
        return [latest]
    return [latest] if (now - latest).total_seconds() <= grace else []


def tick_run_id(schedule: ScheduleRecord, fire_at: datetime) -> str:
    """The same id for the same tick in every coordinator."""
    seed = f"{schedule.name}|{schedule.created_at.isoformat()}|{fire_at.isoformat()}"
    return str(uuid.uuid5(_NAMESPACE, seed))


class ScheduleRunner:
    """Fires due schedules; ``start_run`` is :meth:`EngineService.start_run`."""

    def __init__(self, store: Store, start_run: StartRun) -> None:
        self.store = store
        self.start_run = start_run

    async def fire_due(self) -> int:
        """Fire every due schedule once; return how many runs were started."""
        now = await self.store.now()
        started = 0
        for schedule in await self.store.due_schedules(now):
            try:
                started += await self._fire(schedule, now)
            except TreadleError as exc:
                log.warning("schedule %s: %s", schedule.name, exc.message)
        return started

    async def _fire(self, schedule: ScheduleRecord, now: datetime) -> int:
        ticks, following = due_ticks(schedule, now)
        chosen = apply_catchup(ticks, schedule.catchup, schedule.grace, now)
        last_run = schedule.last_run_id
        started = skipped = 0
        error: str | None = None
        for fire_at in chosen:
            if schedule.overlap == "skip" and await self._active(last_run):
                skipped += 1
                continue
            try:
                run_id = await self._start(schedule, fire_at)
            except (DefinitionError, NotFound) as exc:
                error = f"tick {fire_at.isoformat()}: {exc.message}"
                continue
            last_run = run_id
            started += 1
        passed = skipped + (len(ticks) - len(chosen))
        current = schedule
        while True:
            values: dict[str, Any] = {
                "next_fire_at": following,
                "last_run_id": last_run,
                "fired": current.fired + started,
                "skipped": current.skipped + passed,
                "last_error": error,
            }
            if ticks:
                values["last_fire_at"] = ticks[-1]
            updated = await self.store.update_schedule(current.name, current.version, values)
            if updated is not None:
                return started
            try:
                current = await self.store.get_schedule(schedule.name)
            except NotFound:
                return 0  # deleted meanwhile
            if current.next_fire_at != schedule.next_fire_at:
                return 0  # another coordinator fired these ticks; its runs have the same ids
            # Changed otherwise (paused, edited) while these runs started: count them still.

    async def _active(self, run_id: str | None) -> bool:
        if run_id is None:
            return False
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            return False
        return not RunStatus(run.status).terminal

    async def _start(self, schedule: ScheduleRecord, fire_at: datetime) -> str:
        run_id = tick_run_id(schedule, fire_at)
        try:
            await self.store.get_run(run_id)
            return run_id  # fired already (by another coordinator, or before a crash)
        except NotFound:
            pass
        labels: dict[str, Any] = {
            SCHEDULE_LABEL: schedule.name,
            FIRE_LABEL: fire_at.isoformat(),
        }
        if schedule.overlap == "queue":
            labels["treadle.serial"] = f"schedule:{schedule.name}"
        try:
            await self.start_run(
                schedule.definition_name,
                schedule.inputs,
                version=schedule.definition_version,
                labels=labels,
                actor=f"schedule:{schedule.name}",
                run_id=run_id,
            )
        except (DefinitionError, NotFound):
            raise
        except Exception:
            # A duplicate id means another coordinator created this tick's run first.
            try:
                await self.store.get_run(run_id)
            except NotFound:
                raise
        return run_id


# -- management (API and definitions) ------------------------------------------------------
def schedule_from_spec(
    name: str,
    definition: str,
    spec: ScheduleSpec,
    now: datetime,
    *,
    version: int | None = None,
    source: str = "api",
) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        definition_name=definition,
        definition_version=version,
        cron=spec.cron,
        timezone=spec.timezone,
        inputs=dict(spec.inputs),
        overlap=spec.overlap,
        catchup=spec.catchup,
        grace=spec.grace,
        paused=spec.paused,
        source=source,
        created_at=now,
        next_fire_at=next_fire(spec.cron, spec.timezone, now),
    )


async def check_schedule_target(store: Store, schedule: ScheduleRecord) -> None:
    """The definition exists and accepts the schedule's inputs (NotFound / DefinitionError)."""
    record = await store.get_definition(schedule.definition_name, schedule.definition_version)
    model = definition_from_document(record.document)
    resolve_inputs({k: v.model_dump() for k, v in model.inputs.items()}, schedule.inputs)


async def create_schedule(store: Store, schedule: ScheduleRecord) -> ScheduleRecord:
    await check_schedule_target(store, schedule)
    return await store.put_schedule(schedule)


async def set_paused(store: Store, name: str, paused: bool) -> ScheduleRecord:
    """Pause or resume; resuming starts from the next tick after now (no catch-up storm)."""
    for _ in range(10):
        schedule = await store.get_schedule(name)
        values: dict[str, Any] = {"paused": paused}
        if not paused and schedule.paused:
            values["next_fire_at"] = next_fire(schedule.cron, schedule.timezone, await store.now())
        updated = await store.update_schedule(name, schedule.version, values)
        if updated is not None:
            return updated
    raise Conflict(f"schedule {name!r} keeps changing; try again")


async def sync_definition_schedule(
    store: Store, definition: str, spec: ScheduleSpec | None
) -> None:
    """Make the definition's own schedule (named after it) match ``spec``."""
    try:
        current: ScheduleRecord | None = await store.get_schedule(definition)
    except NotFound:
        current = None
    if current is not None and current.source != "definition":
        if spec is not None:
            raise Conflict(
                f"a schedule named {definition!r} was created through the API; delete it "
                "before giving the definition its own schedule"
            )
        return
    if spec is None:
        if current is not None:
            await store.delete_schedule(definition)
        return
    now = await store.now()
    wanted = schedule_from_spec(definition, definition, spec, now, source="definition")
    if current is None:
        with contextlib.suppress(Conflict):  # created meanwhile by a concurrent upload
            await store.put_schedule(wanted)
        return
    values: dict[str, Any] = {
        "inputs": wanted.inputs,
        "overlap": wanted.overlap,
        "catchup": wanted.catchup,
        "grace": wanted.grace,
    }
    if (current.cron, current.timezone) != (wanted.cron, wanted.timezone):
        values.update(cron=wanted.cron, timezone=wanted.timezone, next_fire_at=wanted.next_fire_at)
    changed = {k: v for k, v in values.items() if getattr(current, k) != v}
    if changed:
        await store.update_schedule(definition, current.version, changed)
