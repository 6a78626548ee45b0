"""SQL implementation of :class:`~treadle.store.triggers_base.TriggerStore` (mixed into SqlStore).

Admissions and rate slots serialise on a row of ``treadle_limit_locks``: updating that row takes
a row lock on PostgreSQL (and SQLite has one writer), so counting and granting happen as one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from treadle.errors import Conflict, NotFound
from treadle.model.states import TaskStatus
from treadle.store import schema as t
from treadle.store import schema_triggers as x
from treadle.store.trigger_records import (
    CallbackRecord,
    HookRecord,
    ScheduleRecord,
    SignalRecord,
    WaitRecord,
)

R = TypeVar("R")

_UNFINISHED = ["pending", "running", "paused"]
# Run-scoped rows of these tables go when their run is pruned.
RUN_TABLES = (x.waits, x.signals, x.run_slots, x.task_slots, x.callbacks)


class _Lost(Exception):
    """Raised inside a transaction to roll it back when a compare-and-set lost."""


def _record(cls: type[R], row: Any) -> R:
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def _values(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


async def _lock(conn: AsyncConnection, key: str) -> datetime | None:
    """Take the serialising row lock of ``key`` (created on first use); return its next_at."""
    c = x.limit_locks.c
    result = await conn.execute(
        update(x.limit_locks).where(c.key == key).values(version=c.version + 1)
    )
    if result.rowcount == 0:
        # A concurrent first use raises IntegrityError here; the caller retries.
        await conn.execute(insert(x.limit_locks).values(key=key, next_at=None, version=1))
        return None
    next_at: datetime | None = (
        await conn.execute(select(c.next_at).where(c.key == key))
    ).scalar_one()
    return next_at


class SqlTriggersMixin:
    """Waits, signals, limits, schedules, hooks and callbacks over SQLAlchemy Core."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def now(self) -> datetime: ...

    # -- waits and signals ----------------------------------------------------------------
    async def park_waits(self, waits: Sequence[WaitRecord]) -> list[str]:
        won: list[str] = []
        if not waits:
            return won
        c = t.tasks.c
        async with self._tx() as conn:
            for wait in waits:
                # Started when parked: the instant its timer and timeout count from.
                started = {"status": TaskStatus.RUNNING.value, "started_at": wait.created_at}
                result = await conn.execute(
                    update(t.tasks)
                    .where(c.id == wait.task_id, c.status == TaskStatus.QUEUED.value)
                    .values(**started, version=c.version + 1)
                )
                if result.rowcount != 1:
                    continue
                await conn.execute(delete(x.waits).where(x.waits.c.task_id == wait.task_id))
                await conn.execute(insert(x.waits).values(_values(wait)))
                won.append(wait.task_id)
        return won

    async def due_waits(self, now: datetime, limit: int = 500) -> list[WaitRecord]:
        w = x.waits.c
        query = (
            select(x.waits)
            .where(w.wake_at.is_not(None), w.wake_at <= now)
            .order_by(w.wake_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [_record(WaitRecord, r) for r in (await conn.execute(query)).all()]

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        w = x.waits.c
        query = select(x.waits).where(w.run_id == run_id).order_by(w.created_at)
        async with self._tx() as conn:
            return [_record(WaitRecord, r) for r in (await conn.execute(query)).all()]

    async def add_signal(self, run_id: str, name: str, payload: Any) -> SignalRecord:
        now = await self.now()
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    insert(x.signals)
                    .values(run_id=run_id, name=name, payload=payload, created_at=now)
                    .returning(*x.signals.c)
                )
            ).first()
        assert row is not None
        return _record(SignalRecord, row)

    async def list_signals(self, run_id: str) -> list[SignalRecord]:
        s = x.signals.c
        query = select(x.signals).where(s.run_id == run_id).order_by(s.id)
        async with self._tx() as conn:
            return [_record(SignalRecord, r) for r in (await conn.execute(query)).all()]

    async def signal_matches(
        self, run_id: str | None = None, limit: int = 500
    ) -> list[tuple[WaitRecord, SignalRecord]]:
        w, s = x.waits.c, x.signals.c
        waits_q = select(x.waits).where(
            w.signal.is_not(None),
            select(s.id)
            .where(s.run_id == w.run_id, s.name == w.signal, s.consumed_by.is_(None))
            .exists(),
        )
        if run_id is not None:
            waits_q = waits_q.where(w.run_id == run_id)
        waits_q = waits_q.order_by(w.created_at).limit(limit)
        async with self._tx() as conn:
            waiting = [_record(WaitRecord, r) for r in (await conn.execute(waits_q)).all()]
            if not waiting:
                return []
            run_ids = sorted({wait.run_id for wait in waiting})
            sig_q = (
                select(x.signals)
                .where(s.run_id.in_(run_ids), s.consumed_by.is_(None))
                .order_by(s.id)
            )
            offered: dict[tuple[str, str], list[SignalRecord]] = defaultdict(list)
            for row in (await conn.execute(sig_q)).all():
                signal = _record(SignalRecord, row)
                offered[(signal.run_id, signal.name)].append(signal)
        matches = []
        for wait in waiting:
            queue = offered.get((wait.run_id, wait.signal or ""))
            if queue:
                matches.append((wait, queue.pop(0)))
        return matches

    async def finish_wait(
        self,
        task_id: str,
        status: str,
        output: Any = None,
        error: str | None = None,
        signal_id: int | None = None,
    ) -> bool:
        now = await self.now()
        c, s = t.tasks.c, x.signals.c
        try:
            async with self._tx() as conn:
                if signal_id is not None:
                    taken = await conn.execute(
                        update(x.signals)
                        .where(s.id == signal_id, s.consumed_by.is_(None))
                        .values(consumed_by=task_id, consumed_at=now)
                    )
                    if taken.rowcount != 1:
                        raise _Lost
                moved = await conn.execute(
                    update(t.tasks)
                    .where(c.id == task_id, c.status == TaskStatus.RUNNING.value)
                    .values(
                        status=status,
                        output=output,
                        error=error,
                        finished_at=now,
                        settled=False,
                        version=c.version + 1,
                    )
                )
                if moved.rowcount != 1:
                    raise _Lost
                await conn.execute(delete(x.waits).where(x.waits.c.task_id == task_id))
        except _Lost:
            await self.drop_stale_waits()
            return False
        return True

    async def drop_stale_waits(self, limit: int = 500) -> int:
        w, c = x.waits.c, t.tasks.c
        live = select(c.id).where(c.id == w.task_id, c.status == TaskStatus.RUNNING.value)
        async with self._tx() as conn:
            stale = [
                r[0]
                for r in (
                    await conn.execute(select(w.task_id).where(~live.exists()).limit(limit))
                ).all()
            ]
            if stale:
                await conn.execute(delete(x.waits).where(w.task_id.in_(stale)))
        return len(stale)

    # -- concurrency and rate limits ------------------------------------------------------
    async def admit_run(
        self, run_id: str, created_at: datetime, scopes: Sequence[tuple[str, int]]
    ) -> bool:
        if not scopes:
            return True
        for attempt in range(5):
            try:
                return await self._admit(run_id, created_at, scopes)
            except IntegrityError:
                if attempt == 4:
                    raise
        return False  # pragma: no cover - the loop returns or raises

    async def _admit(
        self, run_id: str, created_at: datetime, scopes: Sequence[tuple[str, int]]
    ) -> bool:
        s, r = x.run_slots.c, t.runs.c
        wanted = dict(scopes)
        async with self._tx() as conn:
            mine = {
                row.key: row.admitted
                for row in (await conn.execute(select(s.key, s.admitted).where(s.run_id == run_id)))
            }
            if set(wanted) <= set(mine) and all(mine[k] for k in wanted):
                return True
            for key in sorted(wanted):
                await _lock(conn, key)
            admitted = True
            for key, limit in wanted.items():
                active = (
                    await conn.execute(
                        select(func.count())
                        .select_from(x.run_slots.join(t.runs, r.id == s.run_id))
                        .where(
                            s.key == key,
                            s.admitted.is_(True),
                            s.run_id != run_id,
                            r.status.in_(_UNFINISHED),
                        )
                    )
                ).scalar()
                ahead = (
                    await conn.execute(
                        select(func.count())
                        .select_from(x.run_slots.join(t.runs, r.id == s.run_id))
                        .where(
                            s.key == key,
                            s.admitted.is_(False),
                            s.run_id != run_id,
                            r.status == "pending",
                            (s.created_at < created_at)
                            | and_(s.created_at == created_at, s.run_id < run_id),
                        )
                    )
                ).scalar()
                if int(active or 0) + int(ahead or 0) >= limit:
                    admitted = False
            await conn.execute(delete(x.run_slots).where(s.run_id == run_id))
            await conn.execute(
                insert(x.run_slots),
                [
                    {
                        "run_id": run_id,
                        "key": key,
                        "limit": limit,
                        "admitted": admitted,
                        "created_at": created_at,
                    }
                    for key, limit in wanted.items()
                ],
            )
        return admitted

    async def admissible_run_ids(self, limit: int = 500) -> list[str]:
        s, r = x.run_slots.c, t.runs.c
        query = (
            select(s.run_id, s.key, s.limit, s.admitted, s.created_at, r.status)
            .join(t.runs, r.id == s.run_id)
            .where(r.status.in_(_UNFINISHED))
        )
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        active: dict[str, int] = defaultdict(int)
        waiting: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        caps: dict[str, int] = {}
        keys_of: dict[str, set[str]] = defaultdict(set)
        created: dict[str, datetime] = {}
        for row in rows:
            caps[row.key] = row.limit
            if row.admitted:
                active[row.key] += 1
            elif row.status == "pending":
                waiting[row.key].append((row.created_at, row.run_id))
                keys_of[row.run_id].add(row.key)
                created[row.run_id] = row.created_at
        # The runs at the front of each key's line, as many as the key has free slots.
        front: dict[str, set[str]] = {}
        for key, line in waiting.items():
            free = max(0, caps[key] - active[key])
            front[key] = {run for _, run in sorted(line)[:free]}
        ready = sorted(
            (created[run], run)
            for run, keys in keys_of.items()
            if all(run in front[k] for k in keys)
        )
        return [run for _, run in ready[:limit]]

    async def reserve_task_slots(
        self,
        queue: str,
        items: Sequence[tuple[str, str, str]],
        interval: float,
        now: datetime,
    ) -> dict[str, datetime]:
        if not items:
            return {}
        for attempt in range(5):
            try:
                return await self._reserve(queue, items, interval, now)
            except IntegrityError:
                if attempt == 4:
                    raise
        return {}  # pragma: no cover

    async def _reserve(
        self,
        queue: str,
        items: Sequence[tuple[str, str, str]],
        interval: float,
        now: datetime,
    ) -> dict[str, datetime]:
        ts = x.task_slots.c
        key = f"rate:{queue}"
        granted: dict[str, datetime] = {}
        async with self._tx() as conn:
            next_at = await _lock(conn, key)
            cursor = max(next_at or now, now)
            ids = [item[0] for item in items]
            held = {
                row.task_id: (row.token, row.slot_at)
                for row in await conn.execute(
                    select(ts.task_id, ts.token, ts.slot_at).where(ts.task_id.in_(ids))
                )
            }
            fresh = []
            for task_id, run_id, token in items:
                if task_id in held and held[task_id][0] == token:
                    granted[task_id] = held[task_id][1]
                    continue
                granted[task_id] = cursor
                fresh.append(
                    {"task_id": task_id, "run_id": run_id, "token": token, "slot_at": cursor}
                )
                cursor = cursor + timedelta(seconds=interval)
            if fresh:
                await conn.execute(
                    delete(x.task_slots).where(ts.task_id.in_([f["task_id"] for f in fresh]))
                )
                await conn.execute(insert(x.task_slots), fresh)
                await conn.execute(
                    update(x.limit_locks).where(x.limit_locks.c.key == key).values(next_at=cursor)
                )
        return granted

    # -- schedules ------------------------------------------------------------------------
    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        try:
            async with self._tx() as conn:
                await conn.execute(insert(x.schedules).values(_values(schedule)))
        except IntegrityError as exc:
            raise Conflict(f"schedule {schedule.name!r} exists already") from exc
        return schedule

    async def get_schedule(self, name: str) -> ScheduleRecord:
        async with self._tx() as conn:
            row = (
                await conn.execute(select(x.schedules).where(x.schedules.c.name == name))
            ).first()
        if row is None:
            raise NotFound(f"no schedule {name!r}")
        return _record(ScheduleRecord, row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(x.schedules).order_by(x.schedules.c.name))).all()
        return [_record(ScheduleRecord, r) for r in rows]

    async def delete_schedule(self, name: str) -> None:
        async with self._tx() as conn:
            result = await conn.execute(delete(x.schedules).where(x.schedules.c.name == name))
        if result.rowcount != 1:
            raise NotFound(f"no schedule {name!r}")

    async def update_schedule(
        self, name: str, expected_version: int, values: dict[str, Any]
    ) -> ScheduleRecord | None:
        c = x.schedules.c
        stmt = (
            update(x.schedules)
            .where(c.name == name, c.version == expected_version)
            .values(**values, version=c.version + 1)
            .returning(*x.schedules.c)
        )
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _record(ScheduleRecord, row) if row is not None else None

    async def due_schedules(self, now: datetime, limit: int = 100) -> list[ScheduleRecord]:
        c = x.schedules.c
        query = (
            select(x.schedules)
            .where(c.paused.is_(False), c.next_fire_at.is_not(None), c.next_fire_at <= now)
            .order_by(c.next_fire_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [_record(ScheduleRecord, r) for r in (await conn.execute(query)).all()]

    # -- hooks ----------------------------------------------------------------------------
    async def put_hook(self, hook: HookRecord, replace: bool = False) -> HookRecord:
        try:
            async with self._tx() as conn:
                if replace:
                    await conn.execute(delete(x.hooks).where(x.hooks.c.name == hook.name))
                await conn.execute(insert(x.hooks).values(_values(hook)))
        except IntegrityError as exc:
            raise Conflict(f"hook {hook.name!r} exists already") from exc
        return hook

    async def get_hook(self, name: str) -> HookRecord:
        async with self._tx() as conn:
            row = (await conn.execute(select(x.hooks).where(x.hooks.c.name == name))).first()
        if row is None:
            raise NotFound(f"no hook {name!r}")
        return _record(HookRecord, row)

    async def list_hooks(self) -> list[HookRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(x.hooks).order_by(x.hooks.c.name))).all()
        return [_record(HookRecord, r) for r in rows]

    async def delete_hook(self, name: str) -> None:
        async with self._tx() as conn:
            result = await conn.execute(delete(x.hooks).where(x.hooks.c.name == name))
        if result.rowcount != 1:
            raise NotFound(f"no hook {name!r}")

    # -- callbacks ------------------------------------------------------------------------
    async def add_callbacks(self, callbacks: Sequence[CallbackRecord]) -> None:
        if not callbacks:
            return
        c = x.callbacks.c
        for attempt in range(3):
            try:
                async with self._tx() as conn:
                    ids = [cb.id for cb in callbacks]
                    known = {r[0] for r in (await conn.execute(select(c.id).where(c.id.in_(ids))))}
                    rows = [_values(cb) for cb in callbacks if cb.id not in known]
                    if rows:
                        await conn.execute(insert(x.callbacks), rows)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    async def due_callbacks(self, now: datetime, limit: int = 100) -> list[CallbackRecord]:
        c = x.callbacks.c
        query = (
            select(x.callbacks)
            .where(c.status == "pending", c.next_at <= now)
            .order_by(c.next_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [_record(CallbackRecord, r) for r in (await conn.execute(query)).all()]

    async def update_callback(
        self, callback_id: str, expected_version: int, values: dict[str, Any]
    ) -> CallbackRecord | None:
        c = x.callbacks.c
        stmt = (
            update(x.callbacks)
            .where(c.id == callback_id, c.version == expected_version)
            .values(**values, version=c.version + 1)
            .returning(*x.callbacks.c)
        )
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _record(CallbackRecord, row) if row is not None else None

    async def list_callbacks(self, run_id: str) -> list[CallbackRecord]:
        c = x.callbacks.c
        query = select(x.callbacks).where(c.run_id == run_id).order_by(c.created_at, c.id)
        async with self._tx() as conn:
            return [_record(CallbackRecord, r) for r in (await conn.execute(query)).all()]
