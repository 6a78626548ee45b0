"""A worker's two hot paths on SQLite, on the driver connection instead of through SQLAlchemy.

Measured on the development VM: an empty ``claim_next`` took about 460 us through SQLAlchemy
Core (compiling the statement's LIMIT and expanding parameters, building the result, the
transaction events) and about 20 us as the same SQL on the sqlite3 connection. A chain step
makes a claim and a report, so this is a large share of the embedded per-step cost. Values
are encoded as the schema's column types do it (``UTCDateTime``: fixed-width ISO text in UTC;
JSON: orjson text, ``None`` as ``null``), and the semantics are those of
:class:`~treadle.store.sql.SqlStore`, which the store conformance suite checks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from treadle.model.states import AttemptStatus, TaskStatus
from treadle.store.records import AttemptOutcome, TaskRecord

_QUEUED = TaskStatus.QUEUED.value
_RUNNING = TaskStatus.RUNNING.value
_COLUMNS = TaskRecord.__slots__
_JSON_COLUMNS = frozenset({"spec", "depends_on", "rendered", "output"})
_TIME_COLUMNS = frozenset(
    {"created_at", "queued_at", "available_at", "published_at", "started_at", "finished_at"}
)

CLAIM_NEXT = f"""
UPDATE treadle_tasks SET
    status = '{_RUNNING}',
    attempt_count = attempt_count + 1,
    attempt_id = id || '.' || CAST(attempt_count + 1 AS TEXT),
    started_at = :now,
    version = version + 1
WHERE id IN (
    SELECT id FROM treadle_tasks
    WHERE queue = :queue AND status = '{_QUEUED}' AND available_at <= :due
    ORDER BY priority DESC, available_at, seq
    LIMIT :limit
)
RETURNING {", ".join(_COLUMNS)}
"""
# The same for given task ids (a JSON array of them).
CLAIM_IDS = CLAIM_NEXT.replace(
    "WHERE queue = :queue AND", "WHERE id IN (SELECT value FROM json_each(:ids)) AND"
)
INSERT_ATTEMPT = f"""
INSERT INTO treadle_attempts
    (id, task_id, run_id, number, status, worker_id, started_at, lease_expires_at)
VALUES (?, ?, ?, ?, '{AttemptStatus.RUNNING.value}', ?, ?, ?)
"""
FINISH_ATTEMPT = f"""
UPDATE treadle_attempts SET status = ?, finished_at = ?, output = ?, error = ?
WHERE id = ? AND status = '{AttemptStatus.RUNNING.value}'
"""
# Fenced: only while the reported attempt is still the task's current, running one.
FINISH_TASK = f"""
UPDATE treadle_tasks SET
    status = ?, output = ?, error = ?, finished_at = ?, settled = 0, version = version + 1
WHERE id = ? AND attempt_id = ? AND status = '{_RUNNING}'
"""
RETRY_TASK = f"""
UPDATE treadle_tasks SET
    status = '{_QUEUED}', output = ?, error = ?, queued_at = ?, available_at = ?,
    published_at = NULL, finished_at = NULL, settled = 0, version = version + 1
WHERE id = ? AND attempt_id = ? AND status = '{_RUNNING}'
"""


def stamp(value: datetime) -> str:
    """A datetime as ``UTCDateTime`` stores it on SQLite."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def task_from_row(row: Sequence[Any], loads: Callable[[Any], Any]) -> TaskRecord:
    """A task record from a row of :data:`_COLUMNS`, decoded as the column types decode."""
    values: dict[str, Any] = {}
    for name, value in zip(_COLUMNS, row, strict=True):
        if value is None:
            values[name] = None
        elif name in _JSON_COLUMNS:
            values[name] = loads(value)
        elif name in _TIME_COLUMNS:
            values[name] = _when(value)
        elif name == "settled":
            values[name] = bool(value)
        else:
            values[name] = value
    return TaskRecord(**values)


def claim_next(
    db: sqlite3.Connection,
    queue: str | list[str],
    limit: int,
    due: datetime,
    now: datetime,
    worker_id: str,
    lease_expires_at: datetime,
    loads: Callable[[Any], Any],
) -> list[TaskRecord]:
    """Move up to ``limit`` best ready tasks of ``queue`` (a name, or a list of task ids) to
    running and record their attempts."""
    started = stamp(now)
    params: dict[str, Any] = {"now": started, "due": stamp(due), "limit": limit}
    if isinstance(queue, str):
        rows = db.execute(CLAIM_NEXT, {**params, "queue": queue}).fetchall()
    else:
        rows = db.execute(CLAIM_IDS, {**params, "ids": json.dumps(queue)}).fetchall()
    tasks = [task_from_row(row, loads) for row in rows]
    # RETURNING gives no order; a claim hands tasks out best first.
    tasks.sort(key=lambda task: (-task.priority, task.available_at or now, task.seq))
    lease = stamp(lease_expires_at)
    db.executemany(
        INSERT_ATTEMPT,
        [(t.attempt_id, t.id, t.run_id, t.attempt_count, worker_id, started, lease) for t in tasks],
    )
    return tasks


def finish_attempts(
    db: sqlite3.Connection,
    outcomes: Sequence[AttemptOutcome],
    now: datetime,
    dumps: Callable[[Any], str],
) -> list[str]:
    """Record the outcomes of attempts still running; return the accepted attempt ids."""
    latest = {o.attempt_id: o for o in outcomes}
    marks = ", ".join("?" * len(latest))
    live = [
        row[0]
        for row in db.execute(
            f"SELECT id FROM treadle_attempts WHERE id IN ({marks}) "
            f"AND status = '{AttemptStatus.RUNNING.value}'",
            list(latest),
        )
    ]
    if not live:
        return []
    at = stamp(now)
    accepted = [latest[attempt_id] for attempt_id in live]
    db.executemany(
        FINISH_ATTEMPT,
        [(o.attempt_status, at, dumps(o.output), o.error, o.attempt_id) for o in accepted],
    )
    db.executemany(
        FINISH_TASK,
        [
            (o.task_status, dumps(o.output), o.error, at, o.task_id, o.attempt_id)
            for o in accepted
            if o.task_status != _QUEUED
        ],
    )
    db.executemany(
        RETRY_TASK,
        [
            (dumps(o.output), o.error, at, stamp(o.retry_at or now), o.task_id, o.attempt_id)
            for o in accepted
            if o.task_status == _QUEUED
        ],
    )
    return live
