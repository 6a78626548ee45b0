"""A worker's hot statements on PostgreSQL, each one round trip on the raw asyncpg connection.

Through SQLAlchemy a claim was BEGIN, a ``FOR UPDATE SKIP LOCKED`` choice, the UPDATE, the
attempts' INSERT and COMMIT (five round trips, each statement compiled and its expanding ``IN``
rendered anew per batch size), and a report was the same shape. Here each is one statement with
data-modifying CTEs, sent outside an explicit transaction (a single statement is atomic), with
arrays instead of expanding lists so the text never changes and asyncpg prepares it once per
connection. A report that frees slots can claim for them in the same statement
(:data:`FINISH_AND_CLAIM`), so a busy worker spends one round trip per batch, not two. The
semantics are those of every store's claim and report, which the store conformance suite
checks for every backend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from treadle.model.states import AttemptStatus, TaskStatus
from treadle.store.delta import OPEN_ROW_FIELDS
from treadle.store.pg_pass import (
    TERMINAL,
    WEIGHT,
    claim_queued,
    fingerprints,
    open_rows_of,
    with_run_columns,
)
from treadle.store.records import AttemptOutcome, TaskRecord
from treadle.store.schema import as_utc

_QUEUED = TaskStatus.QUEUED.value
_RUNNING = TaskStatus.RUNNING.value
_TASK_COLUMNS = ", ".join(f"t.{name}" for name in TaskRecord.__slots__)


def _claim_ctes(which: str, due: str, limit: str, now: str, worker: str, lease: str) -> str:
    """A claim's CTEs (``chosen``, ``claimed``, ``recorded``) with these parameters; ``which``
    picks the candidates (one queue's, or given ids).

    MATERIALIZED: the choice is made once; inlined into the UPDATE, a LIMIT with SKIP LOCKED
    may be evaluated again and move more rows than asked.
    """
    return f"""
chosen AS MATERIALIZED (
    SELECT id FROM treadle_tasks
    WHERE {which} AND status = '{_QUEUED}' AND available_at <= {due}
    ORDER BY priority DESC, available_at, seq
    LIMIT {limit}
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE treadle_tasks AS t SET
        status = '{_RUNNING}',
        attempt_count = t.attempt_count + 1,
        attempt_id = t.id || '.' || (t.attempt_count + 1)::text,
        started_at = {now},
        version = t.version + 1
    FROM chosen
    WHERE t.id = chosen.id
    RETURNING {_TASK_COLUMNS}
), recorded AS (
    INSERT INTO treadle_attempts
        (id, task_id, run_id, number, status, worker_id, started_at, lease_expires_at)
    SELECT attempt_id, id, run_id, attempt_count, '{AttemptStatus.RUNNING.value}', {worker},
           {now}, {lease}
    FROM claimed
)"""


# $1 attempt ids, $2 task ids, $3 attempt statuses, $4 task statuses, $5 outputs (JSON text),
# $6 errors, $7 retry times, $8 now. The attempts still running are locked first (fencing: a
# stale attempt changes nothing, and a sweeper cannot expire them meanwhile); a task moves only
# while the reported attempt is still its current, running one. A retried task goes back to
# queued, due at its retry time.
def _finish_ctes(settled: str = "false") -> str:
    """The report's CTEs; ``settled``: what the moved rows' settled flag becomes."""
    return f"""
reported AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::timestamptz[])
        AS r(attempt_id, task_id, attempt_status, task_status, output, error, retry_at)
), live AS MATERIALIZED (
    SELECT a.id FROM treadle_attempts AS a
    WHERE a.id = ANY($1::text[]) AND a.status = '{AttemptStatus.RUNNING.value}'
    ORDER BY a.id
    FOR UPDATE
), ended AS (
    UPDATE treadle_attempts AS a SET
        status = r.attempt_status,
        finished_at = $8,
        output = r.output::json,
        error = r.error
    FROM reported AS r JOIN live ON live.id = r.attempt_id
    WHERE a.id = r.attempt_id
    RETURNING a.id
), moved AS (
    UPDATE treadle_tasks AS t SET
        status = r.task_status,
        output = r.output::json,
        error = r.error,
        finished_at = CASE WHEN r.task_status = '{_QUEUED}' THEN NULL ELSE $8 END,
        queued_at = CASE WHEN r.task_status = '{_QUEUED}' THEN $8 ELSE t.queued_at END,
        available_at = CASE WHEN r.task_status = '{_QUEUED}'
                            THEN coalesce(r.retry_at, $8) ELSE t.available_at END,
        published_at = CASE WHEN r.task_status = '{_QUEUED}' THEN NULL ELSE t.published_at END,
        settled = {settled},
        version = t.version + 1
    FROM reported AS r JOIN live ON live.id = r.attempt_id
    WHERE t.id = r.task_id AND t.attempt_id = r.attempt_id AND t.status = '{_RUNNING}'
    RETURNING {", ".join(f"t.{name}" for name in OPEN_ROW_FIELDS)}
)"""


_FINISH_CTES = _finish_ctes()

_CLAIM_ORDER = "ORDER BY priority DESC, available_at, seq"

# $1 queue, $2 due, $3 limit, $4 now, $5 worker id, $6 lease expiry.
CLAIM_NEXT = f"""
WITH {_claim_ctes("queue = $1", "$2", "$3", "$4", "$5", "$6")}
SELECT * FROM claimed {_CLAIM_ORDER}
"""

# $1 task ids, $2 due, $3 limit (the number of ids), $4 now, $5 worker id, $6 lease expiry.
CLAIM_IDS = f"""
WITH {_claim_ctes("id = ANY($1::text[])", "$2", "$3", "$4", "$5", "$6")}
SELECT * FROM claimed {_CLAIM_ORDER}
"""

FINISH_ATTEMPTS = f"""
WITH {_FINISH_CTES}
SELECT id FROM ended
"""

# A report that also claims for the slots it frees: $1-$8 as FINISH_ATTEMPTS, then $9 queue,
# $10 due, $11 limit, $12 worker id, $13 lease expiry (the claim's time is $8). One snapshot:
# the claim sees the tasks as they were before the report, so it never takes a task the
# report moves (those were running). The first column holds the accepted attempt ids on
# every row; a report that claims nothing still returns one row, without a task.
FINISH_AND_CLAIM = f"""
WITH {_FINISH_CTES},
{_claim_ctes("queue = $9", "$10", "$11", "$8", "$12", "$13")}
SELECT e.accepted_ids, c.*
FROM (SELECT array_agg(id) AS accepted_ids FROM ended) AS e
LEFT JOIN claimed AS c ON true
ORDER BY c.priority DESC, c.available_at, c.seq
"""


# A report that also reads the runs of $9 as a pass would right after it (pg_pass.OPEN_ROWS_
# WITH_RUNS). The statement's reads see the rows as they were before its own writes, so the
# reported rows are added from what the report returns: they were running (weight 0, not
# open) and now weigh their new version and are open if finished. Every row carries the
# accepted attempt ids first; a report whose runs have no rows still returns one row.
FINISH_AND_READ = f"""
WITH {_FINISH_CTES},
fps AS ({fingerprints("$9")}), gained AS (
    SELECT run_id, sum({WEIGHT}) AS extra FROM moved GROUP BY run_id
), opened AS (
    SELECT fps.fp_run, fps.fp_count, fps.fp_sum + coalesce(gained.extra, 0) AS fp_sum,
           {", ".join(f"tk.{name} AS open_{name}" for name in OPEN_ROW_FIELDS)}
    FROM fps LEFT JOIN gained ON gained.run_id = fps.fp_run
    LEFT JOIN LATERAL (
        ({open_rows_of("fps.fp_run")})
        UNION ALL
        SELECT {", ".join(OPEN_ROW_FIELDS)} FROM moved
        WHERE moved.run_id = fps.fp_run AND moved.status IN ({TERMINAL})
    ) AS tk ON true
)
SELECT e.accepted_ids, o.*
FROM (SELECT array_agg(id) AS accepted_ids FROM ended) AS e
LEFT JOIN ({with_run_columns("opened")}) AS o ON true
"""


@functools.lru_cache(maxsize=64)
def finish_and_step(keys: tuple[str, ...]) -> str:
    """A report of one attempt and the step decided ahead of it (``store/stepping.py``).

    $1-$8 as FINISH_ATTEMPTS (one outcome), $9 run id, $10 the run's expected version, $11 and
    $12 its expected task count and version sum, $13 worker id, $14 lease expiry, then the
    queueing change as :func:`~treadle.store.pg_pass.claim_queued` takes it ($15 on). The guard
    reads the statement's snapshot, from before the report (the reported task was running,
    weighing nothing in the sum); the report settles its task only when the guard holds, and
    the claim needs both. One row: accepted ids, the guard, the reported task's new version,
    then the claimed task's columns (empty when nothing was claimed).
    """
    guard = "AND (SELECT ok FROM guard) AND EXISTS (SELECT 1 FROM moved)"
    return f"""
WITH guard AS MATERIALIZED (
    SELECT coalesce((SELECT version = $10 FROM treadle_runs WHERE id = $9), false)
       AND (SELECT count(*) = $11 AND coalesce(sum({WEIGHT}), 0) = $12
            FROM treadle_tasks WHERE run_id = $9) AS ok
), {_finish_ctes("(SELECT ok FROM guard)")},
{claim_queued(keys, 15, "$8", "$13", "$14", guard)}
SELECT (SELECT array_agg(id) FROM ended) AS accepted_ids, (SELECT ok FROM guard) AS stepped,
       (SELECT version FROM moved) AS reported_version, c.*
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true
"""


def claim_args(
    which: str | list[str],
    limit: int,
    due: datetime,
    now: datetime,
    worker_id: str,
    lease: datetime,
) -> tuple[Any, ...]:
    """The parameters of :data:`CLAIM_NEXT` (``which``: the queue) or :data:`CLAIM_IDS`
    (the task ids)."""
    return (which, due, limit, now, worker_id, lease)


def claimed_tasks(rows: Sequence[Any]) -> list[TaskRecord]:
    """Task records from the rows :data:`CLAIM_NEXT` returned."""
    return [TaskRecord(**dict(row.items())) for row in rows]


def finish_and_claim_results(rows: Sequence[Any]) -> tuple[list[str], list[TaskRecord]]:
    """The accepted attempt ids and the claimed tasks from :data:`FINISH_AND_CLAIM`'s rows."""
    accepted = list(rows[0]["accepted_ids"] or []) if rows else []
    tasks = [
        TaskRecord(**{name: row[name] for name in TaskRecord.__slots__})
        for row in rows
        if row["id"] is not None
    ]
    return accepted, tasks


def finish_args(
    outcomes: Sequence[AttemptOutcome], now: datetime, dumps: Callable[[Any], str]
) -> tuple[Any, ...]:
    """The parameters of :data:`FINISH_ATTEMPTS`; outputs go as JSON text (None as ``null``,
    as the JSON column stores it through SQLAlchemy)."""
    latest = {o.attempt_id: o for o in outcomes}.values()
    return (
        [o.attempt_id for o in latest],
        [o.task_id for o in latest],
        [o.attempt_status for o in latest],
        [o.task_status for o in latest],
        [dumps(o.output) for o in latest],
        [o.error for o in latest],
        [None if o.retry_at is None else as_utc(o.retry_at) for o in latest],
        now,
    )
