"""The coordinator's per-pass read and write on PostgreSQL, on the raw asyncpg connection.

Through SQLAlchemy the read of :meth:`~treadle.store.sql.SqlStore.load_run_deltas` was BEGIN,
the runs, the fingerprinted open rows (and layers) and COMMIT, each statement's expanding
``IN`` rendered anew per number of runs: about 1 ms for one run, most of it client-side work
and round trips. Here each statement takes arrays, so its text never changes and asyncpg
prepares it once per connection, and it runs outside an explicit transaction: the run row and
the task rows were two snapshots under READ COMMITTED before as well, and the fingerprint and
its open rows still come from one statement.

The write (task compare-and-sets, settled marks, run compare-and-sets, events) keeps the
generic path's order and locking in one transaction; a pass that changes at most one task and
no run (a chain's step) is a single statement instead. Contract tests compare both with the
generic paths on the same rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Table, Text

from treadle.model.states import AttemptStatus, TaskStatus
from treadle.store import schema as t
from treadle.store.delta import ACTIVE_STATUSES, OPEN_ROW_FIELDS, TERMINAL_STATUSES
from treadle.store.records import DecisionWrite, TaskChange, TaskRecord
from treadle.store.schema import UTCDateTime, as_utc

_RUNNING = TaskStatus.RUNNING.value
_ATTEMPT_RUNNING = AttemptStatus.RUNNING.value


def _literals(values: Sequence[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _columns(names: Sequence[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{name}" for name in names)


RUN_COLUMNS = tuple(c.name for c in t.runs.c)
#: The run's columns without the immutable ones a process caches (definition, inputs).
RUN_LIGHT_COLUMNS = tuple(name for name in RUN_COLUMNS if name not in ("definition", "inputs"))
LAYER_COLUMNS = tuple(c.name for c in t.layers.c)

# $1: run ids.
GET_RUNS = f"SELECT {_columns(RUN_COLUMNS)} FROM {t.runs.name} WHERE id = ANY($1::text[])"
GET_RUNS_LIGHT = (
    f"SELECT {_columns(RUN_LIGHT_COLUMNS)} FROM {t.runs.name} WHERE id = ANY($1::text[])"
)
#: A row's share of a run's fingerprint sum (``delta.weight``).
WEIGHT = f"CASE WHEN status IN ({_literals(ACTIVE_STATUSES)}) THEN 0 ELSE version END"
TERMINAL = _literals(TERMINAL_STATUSES)


def fingerprints(run_ids: str) -> str:
    """Each run's row count and version sum (``fp_run``, ``fp_count``, ``fp_sum``) for the
    runs of the text array ``run_ids`` names."""
    return f"""SELECT run_id AS fp_run, count(*) AS fp_count, coalesce(sum({WEIGHT}), 0) AS fp_sum
    FROM {t.tasks.name} WHERE run_id = ANY({run_ids}::text[]) GROUP BY run_id"""


def open_rows_of(run: str) -> str:
    """The finished, unsettled rows of the run ``run`` names, as OPEN_ROWS reads them."""
    return f"""SELECT {_columns(OPEN_ROW_FIELDS)} FROM {t.tasks.name}
    WHERE run_id = {run} AND settled::int = 0 AND (status || '') IN ({TERMINAL})
    OFFSET 0"""


# Each run's fingerprint (row count, sum of versions of rows not queued or running) joined to
# its finished, unsettled rows: one statement, so both come from the same snapshot. The LEFT
# JOIN keeps the fingerprint when no row is open. The open rows are read per run (LATERAL)
# with settled and status tests no index can serve, leaving the run index as the only way
# in: the index on (settled, status) keeps an entry for every finished row version until
# VACUUM, and right after many tasks finished a plan through it visited thousands of dead
# rows (0.04 -> 2 ms); a plain join with such tests got a sequential scan instead (6 ms), so
# OFFSET 0 keeps the per-run read from being folded into one.
OPEN_ROWS = f"""
WITH fps AS ({fingerprints("$1")})
SELECT fps.fp_run, fps.fp_count, fps.fp_sum,
       {", ".join(f"tk.{name} AS open_{name}" for name in OPEN_ROW_FIELDS)}
FROM fps LEFT JOIN LATERAL ({open_rows_of("fps.fp_run")}) AS tk ON true
"""
#: Where a record of :data:`OPEN_ROWS` ends in :data:`OPEN_ROWS_WITH_RUNS`.
OPEN_ROWS_WIDTH = 3 + len(OPEN_ROW_FIELDS)


def with_run_columns(opened: str) -> str:
    """The rows of ``opened`` (a query or CTE shaped as OPEN_ROWS) each followed by its
    run's light columns; a run without task rows is missing."""
    return f"""SELECT opened.*, {_columns(RUN_LIGHT_COLUMNS, "r")}
FROM {opened} AS opened JOIN {t.runs.name} AS r ON r.id = opened.fp_run"""


# OPEN_ROWS with each run's light columns after them: a pass over a run whose immutable
# columns the process holds reads in one round trip.
OPEN_ROWS_WITH_RUNS = with_run_columns(f"({OPEN_ROWS})")
TASK_COLUMNS = tuple(TaskRecord.__slots__)
GET_TASKS = (
    f"SELECT {_columns(TASK_COLUMNS)} FROM {t.tasks.name} WHERE run_id = ANY($1::text[]) "
    "ORDER BY run_id, seq"
)
GET_LAYERS = (
    f"SELECT {_columns(LAYER_COLUMNS)} FROM {t.layers.name} WHERE run_id = ANY($1::text[]) "
    "ORDER BY priority, created_at"
)


def as_mapping(record: Any) -> Mapping[str, Any]:
    """An asyncpg record as the mapping the record builders of ``sql`` read."""
    return dict(record.items())


# -- values for the raw connection ---------------------------------------------------------
_JSON, _TIME, _PLAIN = "json", "time", "plain"


@functools.cache
def _kind(table: Table, column: str) -> str:
    """How a column's values are bound (looked up once: the column lookup is the slow part)."""
    column_type = table.c[column].type
    if isinstance(column_type, JSON):
        return _JSON
    return _TIME if isinstance(column_type, UTCDateTime) else _PLAIN


# JSON goes as text and is cast in the statement (the connection's codec encodes text).
_SQL_TYPES: tuple[tuple[type[Any], str], ...] = (
    (UTCDateTime, "timestamptz"),
    (JSON, "text"),
    (BigInteger, "bigint"),
    (Integer, "int"),
    (Boolean, "bool"),
    (Text, "text"),
    (String, "text"),
)


def sql_type(table: Table, name: str) -> str:
    """The PostgreSQL type a column's parameter is bound as on the raw connection."""
    column_type = table.c[name].type
    for kind, sql in _SQL_TYPES:
        if isinstance(column_type, kind):
            return sql
    raise TypeError(f"{table.name}.{name}: no raw type for {column_type!r}")


def is_json(table: Table, column: str) -> bool:
    """Whether the column holds JSON (sent as text and cast in the statement)."""
    return _kind(table, column) == _JSON


def encoded(table: Table, column: str, value: Any, dumps: Callable[[Any], str]) -> Any:
    """A value as the raw connection binds it for this column: JSON as text (None as JSON
    ``null``, as SQLAlchemy's JSON type stores it), times as aware UTC datetimes."""
    kind = _kind(table, column)
    if kind == _JSON:
        return dumps(value)
    if value is not None and kind == _TIME:
        return as_utc(value)
    return value


def encoded_column(
    table: Table, column: str, rows: Sequence[Any], dumps: Callable[[Any], str]
) -> list[Any]:
    """One column's values of many records (attribute ``column``), each as :func:`encoded`
    binds it, in the order of ``rows``."""
    return [encoded(table, column, getattr(row, column), dumps) for row in rows]


# -- the pass's write -------------------------------------------------------------------------


def _sets(keys: Sequence[str], first: int = 3) -> str:
    return ", ".join(f"{key} = ${number}" for number, key in enumerate(keys, first))


@functools.lru_cache(maxsize=64)
def task_cas(keys: tuple[str, ...]) -> str:
    """A task's compare-and-set for one set of columns ($1 id, $2 expected version)."""
    return (
        f"UPDATE {t.tasks.name} SET {_sets(keys)}, version = version + 1 "
        "WHERE id = $1 AND version = $2"
    )


def task_cas_args(
    change: TaskChange, keys: Sequence[str], dumps: Callable[[Any], str]
) -> list[Any]:
    """The parameters of :func:`task_cas` for one change."""
    values = change.values
    return [
        change.task_id,
        change.expected_version,
        *(encoded(t.tasks, key, values[key], dumps) for key in keys),
    ]


@functools.lru_cache(maxsize=64)
def run_cas(keys: tuple[str, ...], light: bool) -> str:
    """A run's compare-and-set returning the run (``light``: without its immutable columns)."""
    columns = RUN_LIGHT_COLUMNS if light else RUN_COLUMNS
    return (
        f"UPDATE {t.runs.name} SET {_sets(keys)}, version = version + 1 "
        f"WHERE id = $1 AND version = $2 RETURNING {_columns(columns)}"
    )


def run_cas_args(
    run_id: str, version: int, values: Mapping[str, Any], dumps: Callable[[Any], str]
) -> tuple[tuple[str, ...], list[Any]]:
    """The column set and the parameters of :func:`run_cas`."""
    keys = tuple(sorted(values))
    args = [run_id, version, *(encoded(t.runs, k, values[k], dumps) for k in keys)]
    return keys, args


LOCK_VERSIONS = (
    f"SELECT id, version FROM {t.tasks.name} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
MARK_SETTLED = f"UPDATE {t.tasks.name} SET settled = true WHERE id = ANY($1::text[])"
INSERT_EVENTS = f"""
INSERT INTO {t.events.name} (run_id, kind, actor, detail, at)
SELECT run_id, kind, actor, detail::json, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS e(run_id, kind, actor, detail)
"""


@functools.lru_cache(maxsize=64)
def settle_and_task_cas(keys: tuple[str, ...]) -> str:
    """:func:`task_cas` that also marks the tasks of its last parameter (an id array) settled,
    in the same statement; the caller keeps the changed task out of that array."""
    settled = f"${len(keys) + 3}"
    return (
        f"WITH settle AS (UPDATE {t.tasks.name} SET settled = true "
        f"WHERE id = ANY({settled}::text[])) " + task_cas(keys)
    )


def queued_keys(change: TaskChange) -> tuple[str, ...]:
    """The columns a queueing change sets besides ``status``, in the order
    :func:`claim_queued` and :func:`task_cas_args` number them."""
    return tuple(sorted(key for key in change.values if key != "status"))


def claim_queued(
    keys: Sequence[str], first: int, now: str, worker: str, lease: str, guard: str = ""
) -> str:
    """The CTEs ``claimed`` and ``recorded`` of a queueing compare-and-set that claims its
    task: the row goes from pending straight to running, as a compare-and-set to queued
    followed by a claim would leave it (version two past the expected one, attempt number one
    past, the attempt row inserted). Parameters from ``$first``: the task id, its expected
    version, then the values of ``keys`` (the change's columns without ``status``); ``guard``
    adds conditions to the compare-and-set."""
    task_id, version = f"${first}", f"${first + 1}"
    sets = f"{_sets(keys, first + 2)}, " if keys else ""
    where = f"t.id = {task_id} AND t.version = {version} {guard}"
    return _claimed_and_recorded(sets, "", where, now, worker, lease)


def _claimed_and_recorded(
    sets: str, source: str, where: str, now: str, worker: str, lease: str
) -> str:
    """The CTEs ``claimed`` (the rows ``where`` picks, ``sets`` applied, moved straight to
    running) and ``recorded`` (their attempts), shared by the one-task and many-task claims."""
    return f"""claimed AS (
    UPDATE {t.tasks.name} AS t SET {sets}
        status = '{_RUNNING}',
        attempt_count = t.attempt_count + 1,
        attempt_id = t.id || '.' || (t.attempt_count + 1)::text,
        started_at = {now},
        version = t.version + 2
    {source}
    WHERE {where}
    RETURNING {_columns(TASK_COLUMNS, "t")}
), recorded AS (
    INSERT INTO {t.attempts.name}
        (id, task_id, run_id, number, status, worker_id, started_at, lease_expires_at)
    SELECT attempt_id, id, run_id, attempt_count, '{_ATTEMPT_RUNNING}', {worker}, {now}, {lease}
    FROM claimed
)"""


@functools.lru_cache(maxsize=64)
def queue_and_claim(keys: tuple[str, ...]) -> str:
    """:func:`claim_queued` as one statement that also marks tasks settled.

    $1 id, $2 expected version, the keys' values, then the ids to mark settled, the claim's
    time, the worker id and the lease expiry.
    """
    settled, now, worker, lease = (f"${len(keys) + n}" for n in range(3, 7))
    return f"""
WITH settle AS (
    UPDATE {t.tasks.name} SET settled = true WHERE id = ANY({settled}::text[])
), {claim_queued(keys, 1, now, worker, lease)}
SELECT * FROM claimed
"""


@functools.lru_cache(maxsize=64)
def queue_and_claim_many(keys: tuple[str, ...]) -> str:
    """:func:`queue_and_claim` for several tasks at once (chain steps of several runs).

    $1 task ids, $2 their expected versions, one array per key (the values of ``keys``), then
    the ids to mark settled, the claim's time, the worker id and the lease expiry. Each task
    moves only from its expected version, as alone; the rows are locked in id order first, so
    two such statements over the same tasks wait for each other rather than deadlock.
    """
    arrays = ", ".join(
        f"${n}::{sql_type(t.tasks, key)}[]" for n, key in enumerate(("id", "version", *keys), 1)
    )
    settled, now, worker, lease = (f"${len(keys) + n}" for n in range(3, 7))
    sets = "".join(f"{key} = v.{key}{'::json' if is_json(t.tasks, key) else ''}, " for key in keys)
    where = "t.id = v.id AND t.version = v.expected AND t.id IN (SELECT id FROM locked)"
    return f"""
WITH settle AS (
    UPDATE {t.tasks.name} SET settled = true WHERE id = ANY({settled}::text[])
), wanted AS (
    SELECT * FROM unnest({arrays}) AS v({_columns(("id", "expected", *keys))})
), locked AS MATERIALIZED (
    SELECT t.id FROM {t.tasks.name} AS t JOIN wanted USING (id) ORDER BY t.id FOR UPDATE OF t
), {_claimed_and_recorded(sets, "FROM wanted AS v", where, now, worker, lease)}
SELECT * FROM claimed
"""


def queue_and_claim_many_args(
    changes: Sequence[TaskChange], keys: Sequence[str], dumps: Callable[[Any], str]
) -> list[Any]:
    """The task arrays of :func:`queue_and_claim_many` (ids, expected versions, each key's
    values), in the order of ``changes``."""
    args: list[Any] = [[c.task_id for c in changes], [c.expected_version for c in changes]]
    for key in keys:
        args.append([encoded(t.tasks, key, c.values[key], dumps) for c in changes])
    return args


def claimable_change(write: DecisionWrite, claim_ids: Sequence[str]) -> TaskChange | None:
    """The write's only change when it queues one of ``claim_ids`` and the write does
    nothing else but mark other tasks settled (a chain's step): :func:`queue_and_claim`
    writes it. None for any other write."""
    if write.run_change is not None or write.events or len(write.changes) != 1:
        return None
    (change,) = write.changes
    if (
        change.task_id not in claim_ids
        or change.task_id in write.settled
        or change.values.get("status") != TaskStatus.QUEUED.value
    ):
        return None
    return change
