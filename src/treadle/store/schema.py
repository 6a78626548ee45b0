"""Table definitions shared by the SQL stores (SQLite and PostgreSQL).

The Alembic migrations in ``treadle/store/migrations`` create exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.types import TypeEngine


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite keeps them as fixed-width ISO text (``YYYY-MM-DD HH:MM:SS.ffffff``, so text order is
    time order) parsed with ``datetime.fromisoformat``, which is several times faster than the
    generic SQLite DateTime processor; PostgreSQL uses ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


metadata = MetaData()

definitions = Table(
    "treadle_definitions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("dialect", String(20), nullable=False, default="native"),
    Column("document", JSON, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

runs = Table(
    "treadle_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("definition_name", String(200), nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("output", JSON),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("version", Integer, nullable=False, default=1),
    Column("parent_id", String(40)),
    Column("dialect", String(20), nullable=False, default="native"),
    Column("labels", JSON, nullable=False),
    Column("deadline_at", UTCDateTime),
    Index("ix_treadle_runs_created", "created_at", "id"),
    Index("ix_treadle_runs_status_created", "status", "created_at"),
    Index("ix_treadle_runs_definition_created", "definition_name", "created_at"),
    Index("ix_treadle_runs_deadline", "deadline_at"),
)

tasks = Table(
    "treadle_tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("depends_on", JSON, nullable=False),
    Column("queue", String(100), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("layer", String(200)),
    Column("rendered", JSON),
    Column("output", JSON),
    Column("error", Text),
    Column("attempt_count", Integer, nullable=False, default=0),
    Column("attempt_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("queued_at", UTCDateTime),
    Column("available_at", UTCDateTime),
    Column("published_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("version", Integer, nullable=False, default=1),
    Column("settled", Boolean, nullable=False, default=False),
    Column("parent_id", String(40)),
    Index("ix_treadle_tasks_run", "run_id", "seq"),
    Index("ix_treadle_tasks_settled", "settled", "status"),
    Index("ix_treadle_tasks_parent", "parent_id"),
)

# Partial indexes over the few unfinished rows, keyed by literal statuses (queries must spell
# the same literals, not parameters, for the planners to use them). A row enters an index only
# while it matches, so finished tasks, most of a store, cost them nothing.
QUEUED_ROWS = text("status = 'queued'")
RUNNING_ROWS = text("status = 'running'")
# The one index over queued rows, in the order a claim takes them: a claim reads as many
# entries as it takes. The dispatch sweep and the queued depths read it too, queue by queue.
# A second index that could answer `queue = ? AND status = 'queued'` gave PostgreSQL's planner
# a choice it got wrong while the table had no statistics yet (every claim read and sorted
# all queued tasks of its queue: 38 ms a claim with 100,000 queued), so there is none.
Index(
    "ix_treadle_tasks_ready",
    tasks.c.queue,
    tasks.c.priority.desc(),
    tasks.c.available_at,
    tasks.c.seq,
    postgresql_where=QUEUED_ROWS,
    sqlite_where=QUEUED_ROWS,
)
# Running depths (workers page); a claim's `status = 'queued'` cannot use it.
Index(
    "ix_treadle_tasks_running",
    tasks.c.queue,
    postgresql_where=RUNNING_ROWS,
    sqlite_where=RUNNING_ROWS,
)

layers = Table(
    "treadle_layers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_treadle_layers_run", "run_id", "priority"),
)

attempts = Table(
    "treadle_attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("task_id", String(40), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("lease_expires_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("output", JSON),
    Column("error", Text),
    Index("ix_treadle_attempts_task", "task_id"),
    Index("ix_treadle_attempts_run", "run_id"),
    Index("ix_treadle_attempts_status_lease", "status", "lease_expires_at"),
)

logs = Table(
    "treadle_logs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(40), nullable=False),
    Column("task_id", String(40), nullable=False),
    Column("attempt_id", String(40)),
    Column("at", UTCDateTime, nullable=False),
    Column("stream", String(10), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_treadle_logs_task", "task_id", "id"),
    Index("ix_treadle_logs_run", "run_id"),
)

events = Table(
    "treadle_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(40), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(60), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_treadle_events_run", "run_id", "id"),
)

workers = Table(
    "treadle_workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("queues", JSON, nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("in_flight", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
)
