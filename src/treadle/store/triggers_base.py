"""Store primitives for waits, signals, limits, schedules, hooks and callbacks.

Part of the :class:`~treadle.store.base.Store` protocol (which extends this one). Like the rest
of the store, these know rows and compare-and-set only; the engine decides what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from treadle.store.trigger_records import (
    CallbackRecord,
    HookRecord,
    ScheduleRecord,
    SignalRecord,
    WaitRecord,
)


@runtime_checkable
class TriggerStore(Protocol):
    # -- waits and signals ----------------------------------------------------------------
    async def park_waits(self, waits: Sequence[WaitRecord]) -> list[str]:
        """Move each queued task to running and store its wait row; return the ids that won."""

    async def due_waits(self, now: datetime, limit: int = 500) -> list[WaitRecord]:
        """Wait rows whose ``wake_at`` has come."""

    async def list_waits(self, run_id: str) -> list[WaitRecord]: ...

    async def add_signal(self, run_id: str, name: str, payload: Any) -> SignalRecord:
        """Store a signal; it stays until a wait of the same run and name consumes it."""

    async def list_signals(self, run_id: str) -> list[SignalRecord]: ...

    async def signal_matches(
        self, run_id: str | None = None, limit: int = 500
    ) -> list[tuple[WaitRecord, SignalRecord]]:
        """Signal waits paired with the oldest unconsumed signal of their name (oldest wait
        first; each signal offered to one wait only)."""

    async def finish_wait(
        self,
        task_id: str,
        status: str,
        output: Any = None,
        error: str | None = None,
        signal_id: int | None = None,
    ) -> bool:
        """In one transaction: consume the signal (if given, only if still unconsumed), move the
        running task to ``status``, drop its wait row. False, and nothing changed but the removal
        of a stale wait row, when the task is no longer running or the signal was taken."""

    async def drop_stale_waits(self, limit: int = 500) -> int:
        """Remove wait rows whose task is no longer running (cancelled, retried elsewhere)."""

    # -- concurrency and rate limits ------------------------------------------------------
    async def admit_run(
        self, run_id: str, created_at: datetime, scopes: Sequence[tuple[str, int]]
    ) -> bool:
        """Give the run a slot in every ``(key, limit)`` scope, or none: a slot is free when the
        admitted unfinished runs plus the older waiting runs of the key stay under the limit.
        Idempotent: an admitted run stays admitted."""

    async def admissible_run_ids(self, limit: int = 500) -> list[str]:
        """Waiting (pending, not admitted) runs that could get their slots now, oldest first."""

    async def reserve_task_slots(
        self,
        queue: str,
        items: Sequence[tuple[str, str, str]],
        interval: float,
        now: datetime,
    ) -> dict[str, datetime]:
        """Dispatch times for ``(task_id, run_id, token)`` items on a rate-limited queue: one
        every ``interval`` seconds. An item whose token already holds a slot keeps it."""

    # -- schedules ------------------------------------------------------------------------
    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Insert; Conflict when the name is taken."""

    async def get_schedule(self, name: str) -> ScheduleRecord:
        """Raises NotFound."""

    async def list_schedules(self) -> list[ScheduleRecord]: ...

    async def delete_schedule(self, name: str) -> None:
        """Raises NotFound."""

    async def update_schedule(
        self, name: str, expected_version: int, values: dict[str, Any]
    ) -> ScheduleRecord | None:
        """Compare-and-set on the version; None when another writer got there first."""

    async def due_schedules(self, now: datetime, limit: int = 100) -> list[ScheduleRecord]:
        """Unpaused schedules whose next fire time has come."""

    # -- hooks ----------------------------------------------------------------------------
    async def put_hook(self, hook: HookRecord, replace: bool = False) -> HookRecord:
        """Insert (Conflict when the name is taken) or, with ``replace``, overwrite."""

    async def get_hook(self, name: str) -> HookRecord:
        """Raises NotFound."""

    async def list_hooks(self) -> list[HookRecord]: ...

    async def delete_hook(self, name: str) -> None:
        """Raises NotFound."""

    # -- callbacks (an outbox of HTTP notifications) ----------------------------------------
    async def add_callbacks(self, callbacks: Sequence[CallbackRecord]) -> None:
        """Insert; an id that exists already is left alone (so adding is idempotent)."""

    async def due_callbacks(self, now: datetime, limit: int = 100) -> list[CallbackRecord]:
        """Pending callbacks whose ``next_at`` has come."""

    async def update_callback(
        self, callback_id: str, expected_version: int, values: dict[str, Any]
    ) -> CallbackRecord | None:
        """Compare-and-set on the version."""

    async def list_callbacks(self, run_id: str) -> list[CallbackRecord]: ...
