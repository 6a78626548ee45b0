"""Frozen rows for waits, signals, concurrency slots, schedules, hooks and callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class WaitRecord:
    """A parked ``wait`` task: woken at ``wake_at`` and/or by a signal called ``signal``.

    ``on_wake`` says what reaching ``wake_at`` means: ``complete`` (a timer) or ``fail`` (a
    signal wait that timed out). ``output`` is the output a timer completes with.
    """

    task_id: str
    run_id: str
    created_at: datetime
    wake_at: datetime | None = None
    signal: str | None = None
    on_wake: str = "complete"
    output: Any = None


@dataclass(frozen=True, slots=True)
class SignalRecord:
    id: int
    run_id: str
    name: str
    payload: Any
    created_at: datetime
    consumed_by: str | None = None
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A cron schedule; ``version`` guards every change (firing a tick is a compare-and-set)."""

    name: str
    definition_name: str
    cron: str
    timezone: str
    created_at: datetime
    definition_version: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    overlap: str = "skip"
    catchup: str = "none"
    grace: float = 60.0
    paused: bool = False
    source: str = "api"  # api | definition
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    last_run_id: str | None = None
    last_error: str | None = None
    fired: int = 0
    skipped: int = 0
    version: int = 1


@dataclass(frozen=True, slots=True)
class HookRecord:
    """A webhook: API hooks store ``secret``; definition hooks name it in ``secret_env``."""

    name: str
    definition_name: str
    created_at: datetime
    definition_version: int | None = None
    secret: str | None = None
    secret_env: str | None = None
    inputs_key: str | None = None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One HTTP notification to deliver (an outbox row), retried until it succeeds or gives up."""

    id: str
    run_id: str
    event: str
    url: str
    payload: dict[str, Any]
    created_at: datetime
    next_at: datetime
    headers: dict[str, str] = field(default_factory=dict)
    secret_env: str | None = None
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    last_error: str | None = None
    version: int = 1
