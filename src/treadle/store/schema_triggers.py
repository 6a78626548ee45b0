"""Tables for waits, signals, concurrency and rate slots, schedules, hooks and callbacks.

They live on the same ``metadata`` as :mod:`treadle.store.schema`; migration 0002 creates them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from treadle.store.schema import UTCDateTime, metadata

waits = Table(
    "treadle_waits",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("wake_at", UTCDateTime),
    Column("signal", String(200)),
    Column("on_wake", String(16), nullable=False),
    Column("output", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_treadle_waits_wake", "wake_at"),
    Index("ix_treadle_waits_signal", "run_id", "signal"),
)

signals = Table(
    "treadle_signals",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("payload", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("consumed_by", String(40)),
    Column("consumed_at", UTCDateTime),
    Index("ix_treadle_signals_run_name", "run_id", "name", "id"),
)

# One row per (run, concurrency key). A run holds its slot while it is not terminal.
run_slots = Table(
    "treadle_run_slots",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("limit", Integer, nullable=False),
    Column("admitted", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_treadle_run_slots_key", "key", "admitted"),
)

# A row per concurrency key or rate-limited queue: updating it serialises admissions.
limit_locks = Table(
    "treadle_limit_locks",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("next_at", UTCDateTime),
    Column("version", Integer, nullable=False),
)

# The dispatch slot granted to a task for one queueing (token: attempt count + queued time).
task_slots = Table(
    "treadle_task_slots",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("token", String(80), nullable=False),
    Column("slot_at", UTCDateTime, nullable=False),
    Index("ix_treadle_task_slots_run", "run_id"),
)

schedules = Table(
    "treadle_schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("definition_name", String(200), nullable=False),
    Column("definition_version", Integer),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(100), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("overlap", String(10), nullable=False),
    Column("catchup", String(10), nullable=False),
    Column("grace", Float, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("source", String(20), nullable=False),
    Column("next_fire_at", UTCDateTime),
    Column("last_fire_at", UTCDateTime),
    Column("last_run_id", String(40)),
    Column("last_error", Text),
    Column("fired", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_treadle_schedules_due", "paused", "next_fire_at"),
)

hooks = Table(
    "treadle_hooks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("definition_name", String(200), nullable=False),
    Column("definition_version", Integer),
    Column("secret", String(400)),
    Column("secret_env", String(200)),
    Column("inputs_key", String(200)),
    Column("source", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

callbacks = Table(
    "treadle_callbacks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("event", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("secret_env", String(200)),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_treadle_callbacks_due", "status", "next_at"),
    Index("ix_treadle_callbacks_run", "run_id"),
)
