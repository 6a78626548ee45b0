"""A :class:`~treadle.store.base.Store` over SQLAlchemy Core, shared by SQLite and PostgreSQL.

Each state change is one conditional UPDATE on ``(id, version)`` or on the attempt's status;
the subclasses only say how to connect and which clock to trust.
"""

from __future__ import annotations

import base64
import functools
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnClause

from treadle.errors import Conflict, NotFound, ServiceUnavailable
from treadle.faults import pause_point
from treadle.model.states import AttemptStatus, TaskStatus
from treadle.store import schema as t
from treadle.store.claims import claimed_pairs
from treadle.store.delta import ACTIVE_STATUSES, RunDelta, fingerprinted_rows
from treadle.store.immutable_cache import ImmutableColumns
from treadle.store.records import (
    LIGHT_TASK_FIELDS,
    AttemptOutcome,
    AttemptRecord,
    DecisionWrite,
    DefinitionRecord,
    EventRecord,
    LayerChange,
    LayerRecord,
    LogChunk,
    NewLog,
    RunRecord,
    TaskChange,
    TaskRecord,
    WorkerRecord,
)
from treadle.store.sql_secrets import SqlSecretsMixin
from treadle.store.sql_tokens import SqlTokensMixin
from treadle.store.sql_triggers import RUN_TABLES as TRIGGER_RUN_TABLES
from treadle.store.sql_triggers import SqlTriggersMixin

log = logging.getLogger(__name__)

_TERMINAL = [s.value for s in TaskStatus if s.terminal]
_BATCH = 500  # rows per statement batch: well under SQLite's bound-parameter limit
# Columns the scheduler needs on every pass; the JSON ones (spec, depends_on, outputs) are
# immutable or loaded only when a task is dispatched.
_LIGHT_COLUMNS = LIGHT_TASK_FIELDS


# Hot-path statements are built once: SQLAlchemy memoizes a statement's cache key on the
# object, so reusing it skips construction and key generation on every call.
# Statements built once and run on every pass, with plain parameters and no RETURNING: a
# backend may precompile these (SQLite does, see ``sqlite_fast``). Keyed by id, holding each.
REPEATED_STATEMENTS: dict[int, Any] = {}


def _repeated(statement: Any) -> Any:
    REPEATED_STATEMENTS[id(statement)] = statement
    return statement


_C = t.tasks.c
_A = t.attempts.c
_GET_RUN = _repeated(select(t.runs).where(t.runs.c.id == bindparam("run_id")))
_TASK_STATES = _repeated(
    select(*[_C[name] for name in _LIGHT_COLUMNS])
    .where(_C.run_id == bindparam("run_id"))
    .order_by(_C.seq)
)
_TASK_OUTPUTS = _repeated(
    select(_C.id, _C.output).where(_C.run_id == bindparam("run_id"), _C.output.is_not(None))
)
_LOCK_VERSIONS = _repeated(
    select(_C.id, _C.version)
    .where(_C.id.in_(bindparam("ids", expanding=True)))
    .order_by(_C.id)
    .with_for_update()
)
_MARK_SETTLED = _repeated(
    update(t.tasks).where(_C.id.in_(bindparam("ids", expanding=True))).values(settled=True)
)
_QUEUED_LITERAL: ColumnClause[str] = literal_column(f"'{TaskStatus.QUEUED.value}'", String())

_RUNNING_LITERAL: ColumnClause[str] = literal_column(f"'{TaskStatus.RUNNING.value}'", String())


def _due_of(queue: Any) -> Any:
    """One queue's due tasks whose doorbell never rang, rang before the task became due, or
    rang before the redelivery cut-off, best ``limit`` in the claim's order (read through
    ix_treadle_tasks_ready)."""
    return (
        select(t.tasks)
        .where(
            _C.queue == queue,
            _C.status == _QUEUED_LITERAL,
            _C.available_at <= bindparam("now"),
            or_(
                _C.published_at.is_(None),
                _C.published_at < _C.available_at,
                _C.published_at < bindparam("redeliver_before"),
            ),
        )
        .order_by(_C.priority.desc(), _C.available_at, _C.seq)
        .limit(bindparam("limit", type_=Integer))
    )


def _queue_walk() -> Any:
    """The queues holding queued tasks, one index probe each (ix_treadle_tasks_ready leads with
    the queue; a DISTINCT would read every queued entry). ORDER BY ... LIMIT 1, not min():
    without statistics PostgreSQL estimated one queued row and aggregated the whole index."""
    one: ColumnClause[int] = literal_column("1")
    first = (
        select(_C.queue).where(_C.status == _QUEUED_LITERAL).order_by(_C.queue).limit(one)
    ).subquery("first")
    walk = select(first.c.queue).cte("queues", recursive=True)
    later = t.tasks.alias("later")
    following = (
        select(later.c.queue)
        .where(later.c.status == _QUEUED_LITERAL, later.c.queue > walk.c.queue)
        .order_by(later.c.queue)
        .limit(one)
        .scalar_subquery()
    )
    return walk.union_all(select(following).where(walk.c.queue.is_not(None)))


_QUEUES = _queue_walk()
QUEUES_WITH_QUEUED = select(_QUEUES.c.queue).where(_QUEUES.c.queue.is_not(None))
_DUE_OF_QUEUE = _repeated(_due_of(bindparam("queue")))
# Every queue's due tasks in one statement, for a database with LATERAL (PostgreSQL): each
# queue's best `limit` through the ready index, then the best of all.
_DUE_LATERAL = _due_of(_QUEUES.c.queue).lateral("due")
DUE_TASKS_LATERAL = (
    select(_DUE_LATERAL)
    .select_from(_QUEUES.join(_DUE_LATERAL, true()))
    .where(_QUEUES.c.queue.is_not(None))
    .order_by(_DUE_LATERAL.c.priority.desc(), _DUE_LATERAL.c.available_at, _DUE_LATERAL.c.seq)
    .limit(bindparam("limit", type_=Integer))
)
_QUEUE_DEPTHS = _repeated(
    select(_C.queue, _QUEUED_LITERAL, func.count())
    .where(_C.status == _QUEUED_LITERAL)
    .group_by(_C.queue)
    .union_all(
        select(_C.queue, _RUNNING_LITERAL, func.count())
        .where(_C.status == _RUNNING_LITERAL)
        .group_by(_C.queue)
    )
)


def _claim_statement(which: Any) -> Any:
    """Move the tasks ``which`` selects from queued to running, returning their rows; the
    attempt id is derived from the task id and the attempt number, so it is unique without a
    second round trip."""
    return (
        update(t.tasks)
        .where(
            _C.id.in_(which),
            _C.status == TaskStatus.QUEUED.value,
            _C.available_at <= bindparam("due"),
        )
        .values(
            status=TaskStatus.RUNNING.value,
            attempt_id=_C.id + "." + func.cast(_C.attempt_count + 1, String),
            attempt_count=_C.attempt_count + 1,
            started_at=bindparam("now"),
            version=_C.version + 1,
        )
        .returning(*t.tasks.c)
    )


_CLAIM = _claim_statement(bindparam("ids", expanding=True))
_INSERT_ATTEMPTS = insert(t.attempts)
# Built once: ``insert(table).values(**row)`` would build and key a new statement per call.
_INSERT_RUN = insert(t.runs)
_INSERT_TASKS = insert(t.tasks)
_INSERT_EVENTS = insert(t.events)


# A run's definition and inputs never change: the coordinator's per-pass read skips them (they
# can be megabytes of JSON for a big graph) once this process has seen them.
_RUN_LIGHT_COLUMNS = [c for c in t.runs.c if c.name not in ("definition", "inputs")]
_GET_RUN_LIGHT = _repeated(select(*_RUN_LIGHT_COLUMNS).where(t.runs.c.id == bindparam("run_id")))

# The coordinator's per-pass read (``load_run_deltas``), for any number of runs: each run's
# fingerprint (task count, sum of versions of the rows not queued or running) joined to its
# finished, unsettled rows, in ONE statement so both come from the same snapshot (separate
# statements under READ COMMITTED could disagree and force needless reloads). The LEFT JOIN
# keeps the fingerprint row when no row is returned; a run without tasks has no row at all.
_RUN_IDS: Any = bindparam("ids", expanding=True)
_GET_RUNS = _repeated(select(t.runs).where(t.runs.c.id.in_(_RUN_IDS)))
_GET_RUNS_LIGHT = _repeated(select(*_RUN_LIGHT_COLUMNS).where(t.runs.c.id.in_(_RUN_IDS)))
_FINGERPRINTS = (
    select(
        _C.run_id.label("fp_run"),
        func.count().label("fp_count"),
        func.coalesce(
            func.sum(case((_C.status.in_(ACTIVE_STATUSES), 0), else_=_C.version)), 0
        ).label("fp_sum"),
    )
    .where(_C.run_id.in_(_RUN_IDS))
    .group_by(_C.run_id)
    .cte("fps")
)
_OPEN_ROWS_MANY = _repeated(
    select(
        _FINGERPRINTS.c.fp_run,
        _FINGERPRINTS.c.fp_count,
        _FINGERPRINTS.c.fp_sum,
        *[_C[name] for name in _LIGHT_COLUMNS],
        _C.output,
    ).select_from(
        _FINGERPRINTS.outerjoin(
            t.tasks,
            and_(
                _C.run_id == _FINGERPRINTS.c.fp_run,
                _C.settled.is_(False),
                _C.status.in_(_TERMINAL),
            ),
        )
    )
)
_GET_TASKS_MANY = _repeated(
    select(t.tasks).where(_C.run_id.in_(_RUN_IDS)).order_by(_C.run_id, _C.seq)
)
_GET_LAYERS_MANY = _repeated(
    select(t.layers)
    .where(t.layers.c.run_id.in_(_RUN_IDS))
    .order_by(t.layers.c.priority, t.layers.c.created_at)
)


@functools.lru_cache(maxsize=64)
def _task_cas(keys: tuple[str, ...]) -> Any:
    """The compare-and-set UPDATE for one set of task columns, built once per set."""
    return _repeated(
        update(t.tasks)
        .where(_C.id == bindparam("w_id"), _C.version == bindparam("w_version"))
        .values({**{k: bindparam(f"v_{k}") for k in keys}, "version": _C.version + 1})
    )


@functools.lru_cache(maxsize=64)
def _run_cas(keys: tuple[str, ...], light: bool) -> Any:
    """A run's compare-and-set for one set of columns, returning the run (``light``: without
    its immutable columns), built once per set."""
    runs = t.runs.c
    return (
        update(t.runs)
        .where(runs.id == bindparam("w_id"), runs.version == bindparam("w_version"))
        .values({**{k: bindparam(f"v_{k}") for k in keys}, "version": runs.version + 1})
        .returning(*(_RUN_LIGHT_COLUMNS if light else t.runs.c))
    )


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def _run(row: Any, definition: Any = None, inputs: Any = None) -> RunRecord:
    """A run from a full row, or from a light one plus its cached immutable columns."""
    return run_record(row._mapping, definition, inputs)


def run_record(m: Mapping[str, Any], definition: Any = None, inputs: Any = None) -> RunRecord:
    """A run from a row's mapping (full, or light plus the cached immutable columns)."""
    return RunRecord(
        id=m["id"],
        definition_name=m["definition_name"],
        definition_version=m["definition_version"],
        definition=m["definition"] if definition is None else definition,
        status=m["status"],
        inputs=m["inputs"] if inputs is None else inputs,
        created_at=m["created_at"],
        version=m["version"],
        error=m["error"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        parent_id=m["parent_id"],
        dialect=m["dialect"],
        labels=m["labels"] or {},
        output=m["output"],
        deadline_at=m["deadline_at"],
    )


RunWrite = tuple[tuple[str, int, dict[str, Any]], Sequence[tuple[str, str, str, dict[str, Any]]]]


def decision_parts(
    writes: Sequence[DecisionWrite],
) -> tuple[list[TaskChange], list[str], list[RunWrite]]:
    """A batch of decisions as one write: task changes, settled ids, and the run changes with
    their events, runs in id order (after the tasks, locked in id order by the batch): two
    coordinators writing overlapping batches take their locks in the same order."""
    changes = [change for write in writes for change in write.changes]
    settled = list(dict.fromkeys(task_id for write in writes for task_id in write.settled))
    run_writes: list[RunWrite] = sorted(
        ((w.run_change, w.events) for w in writes if w.run_change is not None),
        key=lambda pair: pair[0][0],
    )
    return changes, settled, run_writes


def decision_results(
    writes: Sequence[DecisionWrite], won: set[str], updated: Mapping[str, RunRecord]
) -> list[tuple[list[str], RunRecord | None]]:
    """Each decision's share of a batch's outcome: its tasks that won, its run as updated."""
    return [
        (
            list(dict.fromkeys(c.task_id for c in write.changes if c.task_id in won)),
            updated.get(write.run_change[0]) if write.run_change else None,
        )
        for write in writes
    ]


def first_changes(changes: Sequence[TaskChange]) -> dict[str, TaskChange]:
    """The first change of each task (a batch judges a task by one expected version)."""
    firsts: dict[str, TaskChange] = {}
    for change in changes:
        firsts.setdefault(change.task_id, change)
    return firsts


def holding_groups(
    firsts: Mapping[str, TaskChange], current: Mapping[str, int]
) -> tuple[list[TaskChange], dict[tuple[str, ...], list[TaskChange]]]:
    """The changes whose expected version is the locked current one, and those grouped by
    their set of columns (one UPDATE statement per group)."""
    holding = [ch for ch in firsts.values() if current.get(ch.task_id) == ch.expected_version]
    groups: dict[tuple[str, ...], list[TaskChange]] = {}
    for change in holding:
        groups.setdefault(tuple(sorted(change.values)), []).append(change)
    return holding, groups


def tasks_by_run(run_ids: Sequence[str], tasks: Sequence[TaskRecord]) -> list[list[TaskRecord]]:
    """Each run's tasks, in the order of ``run_ids`` (an unknown run has none)."""
    by_run: dict[str, list[TaskRecord]] = {run_id: [] for run_id in run_ids}
    for task in tasks:
        by_run[task.run_id].append(task)
    return [list(by_run[run_id]) for run_id in run_ids]


def run_deltas(
    requests: Sequence[tuple[str, bool]],
    runs: Mapping[str, RunRecord],
    fingerprints: Mapping[str, tuple[int, int]],
    open_rows: Mapping[str, list[dict[str, Any]]],
    layers: Mapping[str, list[LayerRecord]],
) -> list[RunDelta | NotFound]:
    """One :class:`RunDelta` per request (in order) from what a batched read returned."""
    results: list[RunDelta | NotFound] = []
    for run_id, with_layers in requests:
        run = runs.get(run_id)
        if run is None:
            results.append(NotFound(f"no run {run_id!r}"))
            continue
        count, version_sum = fingerprints.get(run_id, (0, 0))
        results.append(
            RunDelta(
                run,
                list(open_rows.get(run_id, ())),
                count,
                version_sum,
                list(layers.get(run_id, ())) if with_layers else [],
            )
        )
    return results


def _layer(row: Any) -> LayerRecord:
    return layer_record(row._mapping)


def layer_record(m: Mapping[str, Any]) -> LayerRecord:
    """A layer from a row's mapping."""
    return LayerRecord(**{name: m[name] for name in LayerRecord.__slots__})


def _task(row: Any) -> TaskRecord:
    m = row._mapping
    return TaskRecord(**{name: m[name] for name in TaskRecord.__slots__})


def _attempt(row: Any) -> AttemptRecord:
    m = row._mapping
    return AttemptRecord(**{name: m[name] for name in AttemptRecord.__slots__})


def _task_values(task: TaskRecord) -> dict[str, Any]:
    return {name: getattr(task, name) for name in TaskRecord.__slots__}


def encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), run_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotFound(f"invalid cursor: {cursor!r}") from exc


class SqlStore(SqlTokensMixin, SqlTriggersMixin, SqlSecretsMixin, ABC):
    """Store logic on an :class:`AsyncEngine`; see :mod:`treadle.store.base` for the contract."""

    url: str
    # Backends with row locks (PostgreSQL) let concurrent sweepers skip each other's rows.
    skip_locked: bool = False

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._immutable = ImmutableColumns()

    # -- plumbing -------------------------------------------------------------------------
    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            reason = (str(exc.orig) or type(exc.orig).__name__).strip().splitlines()[0]
            raise ServiceUnavailable(f"store {self.url}: {reason}") from exc
        except OSError as exc:
            raise ServiceUnavailable(f"store {self.url} unreachable: {exc}") from exc

    async def migrate(self) -> None:
        from treadle.store.migrate import upgrade

        await upgrade(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(select(1))

    async def now(self) -> datetime:
        return utcnow()

    def _due(self, now: datetime) -> datetime:
        """The latest ``available_at`` a claim at ``now`` accepts (see PostgresStore)."""
        return now

    async def _clock(self, conn: AsyncConnection) -> datetime:
        """The store's clock, read on the connection of the transaction in progress.

        Subclasses with a server clock read it there: asking :meth:`now` instead would take a
        second pooled connection while holding this one, and a burst could starve the pool.
        """
        return utcnow()

    # -- definitions ----------------------------------------------------------------------
    async def put_definition(self, record: DefinitionRecord) -> DefinitionRecord:
        record_at = record.created_at or utcnow()
        try:
            async with self._tx() as conn:
                await conn.execute(
                    insert(t.definitions).values(
                        name=record.name,
                        version=record.version,
                        dialect=record.dialect,
                        document=record.document,
                        source=record.source,
                        created_at=record_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(
                f"definition {record.name!r} version {record.version} exists already"
            ) from exc
        return DefinitionRecord(
            record.name, record.version, record.document, record.source, record.dialect, record_at
        )

    async def get_definition(self, name: str, version: int | None = None) -> DefinitionRecord:
        query = select(t.definitions).where(t.definitions.c.name == name)
        if version is not None:
            query = query.where(t.definitions.c.version == version)
        query = query.order_by(t.definitions.c.version.desc()).limit(1)
        async with self._tx() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise NotFound(f"no definition {what}")
        m = row._mapping
        return DefinitionRecord(
            m["name"], m["version"], m["document"], m["source"], m["dialect"], m["created_at"]
        )

    async def list_definitions(self) -> list[DefinitionRecord]:
        latest = (
            select(t.definitions.c.name, func.max(t.definitions.c.version).label("v"))
            .group_by(t.definitions.c.name)
            .subquery()
        )
        query = (
            select(t.definitions)
            .join(
                latest,
                and_(t.definitions.c.name == latest.c.name, t.definitions.c.version == latest.c.v),
            )
            .order_by(t.definitions.c.name)
        )
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DefinitionRecord(r.name, r.version, r.document, r.source, r.dialect, r.created_at)
            for r in rows
        ]

    async def definition_versions(self, name: str) -> list[int]:
        query = (
            select(t.definitions.c.version)
            .where(t.definitions.c.name == name)
            .order_by(t.definitions.c.version)
        )
        async with self._tx() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    # -- runs -----------------------------------------------------------------------------
    async def create_run(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord],
        layers: Sequence[LayerRecord] = (),
        events: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        values = {name: getattr(run, name) for name in RunRecord.__slots__}
        try:
            async with self._tx() as conn:
                await conn.execute(_INSERT_RUN, values)
                if tasks:
                    await conn.execute(_INSERT_TASKS, [_task_values(task) for task in tasks])
                if layers:
                    await conn.execute(
                        insert(t.layers),
                        [
                            {name: getattr(layer, name) for name in LayerRecord.__slots__}
                            for layer in layers
                        ],
                    )
                if events:
                    await conn.execute(
                        _INSERT_EVENTS,
                        [
                            {
                                "run_id": run.id,
                                "at": run.created_at,
                                "kind": kind,
                                "actor": actor,
                                "detail": detail,
                            }
                            for kind, actor, detail in events
                        ],
                    )
        except IntegrityError as exc:
            raise Conflict(f"run {run.id!r} or one of its tasks exists already") from exc

    # -- layers ---------------------------------------------------------------------------
    async def get_layers(self, run_id: str) -> list[LayerRecord]:
        c = t.layers.c
        query = select(t.layers).where(c.run_id == run_id).order_by(c.priority, c.created_at)
        async with self._tx() as conn:
            return [_layer(r) for r in (await conn.execute(query)).all()]

    async def get_layer(self, layer_id: str) -> LayerRecord:
        async with self._tx() as conn:
            row = (await conn.execute(select(t.layers).where(t.layers.c.id == layer_id))).first()
        if row is None:
            raise NotFound(f"no layer {layer_id!r}")
        return _layer(row)

    async def update_layers(self, changes: Sequence[LayerChange]) -> list[str]:
        won: list[str] = []
        if not changes:
            return won
        c = t.layers.c
        async with self._tx() as conn:
            for change in changes:
                stmt = (
                    update(t.layers)
                    .where(c.id == change.layer_id, c.version == change.expected_version)
                    .values(**change.values, version=c.version + 1)
                )
                if (await conn.execute(stmt)).rowcount == 1:
                    won.append(change.layer_id)
        return won

    async def expand_task(self, change: TaskChange, children: Sequence[TaskRecord]) -> bool:
        c = t.tasks.c
        async with self._tx() as conn:
            result = await conn.execute(
                update(t.tasks)
                .where(c.id == change.task_id, c.version == change.expected_version)
                .values(**change.values, version=c.version + 1)
            )
            if result.rowcount != 1:
                return False
            rows = [_task_values(child) for child in children]
            for start in range(0, len(rows), 1000):
                await conn.execute(insert(t.tasks), rows[start : start + 1000])
        return True

    async def delete_tasks(self, task_ids: Sequence[str]) -> None:
        ids = list(task_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with self._tx() as conn:
                await conn.execute(delete(t.logs).where(t.logs.c.task_id.in_(chunk)))
                await conn.execute(delete(t.attempts).where(t.attempts.c.task_id.in_(chunk)))
                await conn.execute(delete(t.tasks).where(t.tasks.c.id.in_(chunk)))

    async def overdue_run_ids(self, now: datetime, limit: int = 100) -> list[str]:
        c = t.runs.c
        query = (
            select(c.id)
            .where(c.deadline_at < now, c.status.in_(["pending", "running", "paused"]))
            .order_by(c.deadline_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if not tasks:
            return
        try:
            async with self._tx() as conn:
                await conn.execute(insert(t.tasks), [_task_values(task) for task in tasks])
        except IntegrityError as exc:
            raise Conflict("one of the tasks exists already") from exc

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._tx() as conn:
            row = (await conn.execute(_GET_RUN, {"run_id": run_id})).first()
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return _run(row)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_prefix: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        c = t.runs.c
        query = select(t.runs)
        if status:
            query = query.where(c.status == status)
        if definition:
            query = query.where(c.definition_name == definition)
        if created_after:
            query = query.where(c.created_at >= created_after)
        if created_before:
            query = query.where(c.created_at < created_before)
        if id_prefix:
            query = query.where(c.id.startswith(id_prefix, autoescape=True))
        if cursor:
            at, run_id = decode_cursor(cursor)
            query = query.where(tuple_(c.created_at, c.id) < tuple_(at, run_id))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
        async with self._tx() as conn:
            rows = [_run(r) for r in (await conn.execute(query)).all()]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return rows, next_cursor

    async def count_runs(self, *, status: str | None = None) -> int:
        query = select(func.count()).select_from(t.runs)
        if status:
            query = query.where(t.runs.c.status == status)
        async with self._tx() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def active_run_ids(self, limit: int = 1000) -> list[str]:
        query = (
            select(t.runs.c.id)
            .where(t.runs.c.status.in_(["pending", "running"]))
            .order_by(t.runs.c.created_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def update_run(
        self, run_id: str, expected_version: int, values: dict[str, Any]
    ) -> RunRecord | None:
        stmt = (
            update(t.runs)
            .where(t.runs.c.id == run_id, t.runs.c.version == expected_version)
            .values(**values, version=t.runs.c.version + 1)
            .returning(*t.runs.c)
        )
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _run(row) if row is not None else None

    # -- tasks ----------------------------------------------------------------------------
    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        return (await self.get_tasks_many([run_id]))[0]

    async def get_tasks_many(self, run_ids: Sequence[str]) -> list[list[TaskRecord]]:
        ids = list(dict.fromkeys(run_ids))
        async with self._tx() as conn:
            rows = (await conn.execute(_GET_TASKS_MANY, {"ids": ids})).all()
        return tasks_by_run(run_ids, [_task(row) for row in rows])

    async def get_children(self, parent_id: str) -> list[TaskRecord]:
        c = t.tasks.c
        query = select(t.tasks).where(c.parent_id == parent_id).order_by(c.seq)
        async with self._tx() as conn:
            return [_task(r) for r in (await conn.execute(query)).all()]

    async def load_run_state(
        self, run_id: str, with_outputs: bool
    ) -> tuple[RunRecord, list[dict[str, Any]], dict[str, Any] | None]:
        params = {"run_id": run_id}
        async with self._tx() as conn:
            row, immutable = await self._read_run_row(conn, run_id)
            states = [
                dict(zip(_LIGHT_COLUMNS, r, strict=True))
                for r in (await conn.execute(_TASK_STATES, params)).all()
            ]
            outputs = None
            if with_outputs:
                rows = (await conn.execute(_TASK_OUTPUTS, params)).all()
                # A Python None is stored as JSON null, which IS NOT NULL lets through.
                outputs = {r[0]: r[1] for r in rows if r[1] is not None}
        return self._run_of(row, immutable), states, outputs

    async def load_run_delta(self, run_id: str, with_layers: bool = True) -> RunDelta:
        result = (await self.load_run_deltas([(run_id, with_layers)]))[0]
        if isinstance(result, NotFound):
            raise result
        return result

    async def load_run_deltas(
        self, requests: Sequence[tuple[str, bool]]
    ) -> list[RunDelta | NotFound]:
        ids, layered, cached, full = self._delta_reads(requests)
        runs: dict[str, RunRecord] = {}
        async with self._tx() as conn:
            if full:
                for row in (await conn.execute(_GET_RUNS, {"ids": full})).all():
                    runs[row._mapping["id"]] = self._run_of(row, None)
            if cached:
                for row in (await conn.execute(_GET_RUNS_LIGHT, {"ids": list(cached)})).all():
                    run_id = row._mapping["id"]
                    runs[run_id] = self._run_of(row, cached[run_id])
            joined = (await conn.execute(_OPEN_ROWS_MANY, {"ids": ids})).all()
            layer_rows = (
                (await conn.execute(_GET_LAYERS_MANY, {"ids": layered})).all() if layered else []
            )
        fingerprints, open_rows = fingerprinted_rows(joined)
        layers: dict[str, list[LayerRecord]] = {}
        for r in layer_rows:
            layers.setdefault(r._mapping["run_id"], []).append(_layer(r))
        return run_deltas(requests, runs, fingerprints, open_rows, layers)

    def _delta_reads(
        self, requests: Sequence[tuple[str, bool]]
    ) -> tuple[list[str], list[str], dict[str, tuple[Any, Any]], list[str]]:
        """What a batched pass read asks for: every run, the runs whose layers are wanted, the
        runs whose immutable columns this process has (with them), and the others."""
        ids = list(dict.fromkeys(run_id for run_id, _ in requests))
        layered = list(dict.fromkeys(run_id for run_id, with_layers in requests if with_layers))
        cached = {i: self._immutable[i] for i in ids if i in self._immutable}
        full = [i for i in ids if i not in cached]
        return ids, layered, cached, full

    async def _read_run_row(
        self, conn: AsyncConnection, run_id: str
    ) -> tuple[Any, tuple[Any, Any] | None]:
        """The run's row, without its immutable columns when they are cached already."""
        immutable = self._immutable.get(run_id)
        statement = _GET_RUN if immutable is None else _GET_RUN_LIGHT
        row = (await conn.execute(statement, {"run_id": run_id})).first()
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return row, immutable

    def _run_of(self, row: Any, immutable: tuple[Any, Any] | None) -> RunRecord:
        return self._run_from(row._mapping, immutable)

    def _run_from(self, m: Mapping[str, Any], immutable: tuple[Any, Any] | None) -> RunRecord:
        """A run from a row's mapping; a full row's immutable columns are remembered."""
        if immutable is None:
            run = run_record(m)
            self._remember_run(run)
            return run
        return run_record(m, *immutable)

    def _remember_run(self, run: RunRecord) -> None:
        self._immutable.remember(run)

    async def apply_decision(
        self,
        changes: Sequence[TaskChange],
        settled: Sequence[str],
        run_change: tuple[str, int, dict[str, Any]] | None,
        events: Sequence[tuple[str, str, str, dict[str, Any]]],
    ) -> tuple[list[str], RunRecord | None]:
        write = DecisionWrite(changes, settled, run_change, events)
        return (await self.apply_decisions([write]))[0]

    async def apply_decisions(
        self, writes: Sequence[DecisionWrite]
    ) -> list[tuple[list[str], RunRecord | None]]:
        changes, settled, run_writes = decision_parts(writes)
        won: set[str] = set()
        updated: dict[str, RunRecord] = {}
        async with self._tx() as conn:
            for start in range(0, len(changes), _BATCH):
                won.update(await self._cas_batch(conn, changes[start : start + _BATCH]))
            for start in range(0, len(settled), _BATCH):
                await conn.execute(_MARK_SETTLED, {"ids": settled[start : start + _BATCH]})
            events: list[dict[str, Any]] = []
            for run_change, run_events in run_writes:
                run = await self._cas_run(conn, run_change)
                if run is not None:
                    updated[run.id] = run
                    events.extend(
                        {"run_id": run_id, "kind": kind, "actor": actor, "detail": detail}
                        for run_id, kind, actor, detail in run_events
                    )
            if events:
                # Recorded only with the run's update that produced them.
                now = await self._clock(conn)
                await conn.execute(insert(t.events), [{**e, "at": now} for e in events])
        return decision_results(writes, won, updated)

    async def _cas_run(
        self, conn: AsyncConnection, run_change: tuple[str, int, dict[str, Any]]
    ) -> RunRecord | None:
        """The run's compare-and-set: the run as updated, or None if its version moved."""
        run_id, version, values = run_change
        # Without the immutable columns when this process has them (they can be megabytes).
        immutable = self._immutable.get(run_id)
        params = {f"v_{key}": value for key, value in values.items()}
        params.update(w_id=run_id, w_version=version)
        statement = _run_cas(tuple(sorted(values)), immutable is not None)
        row = (await conn.execute(statement, params)).first()
        return None if row is None else self._run_of(row, immutable)

    async def get_task_states(self, run_id: str) -> list[TaskRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(_TASK_STATES, {"run_id": run_id})).all()
            run = (await conn.execute(_GET_RUN, {"run_id": run_id})).first()
        created = run._mapping["created_at"] if run is not None else utcnow()
        return [
            TaskRecord(
                **dict(zip(_LIGHT_COLUMNS, row, strict=True)),
                spec={},
                depends_on=[],
                created_at=created,
            )
            for row in rows
        ]

    async def task_outputs(self, run_id: str) -> dict[str, Any]:
        c = t.tasks.c
        query = select(c.id, c.output).where(c.run_id == run_id, c.output.is_not(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        # A Python None is stored as JSON null, which IS NOT NULL lets through.
        return {row[0]: row[1] for row in rows if row[1] is not None}

    async def get_task(self, task_id: str) -> TaskRecord:
        async with self._tx() as conn:
            row = (await conn.execute(select(t.tasks).where(t.tasks.c.id == task_id))).first()
        if row is None:
            raise NotFound(f"no task {task_id!r}")
        return _task(row)

    async def update_tasks(self, changes: Sequence[TaskChange]) -> list[str]:
        won: list[str] = []
        if not changes:
            return won
        async with self._tx() as conn:
            for start in range(0, len(changes), _BATCH):
                won.extend(await self._cas_batch(conn, changes[start : start + _BATCH]))
        return won

    async def _cas_batch(self, conn: AsyncConnection, changes: Sequence[TaskChange]) -> list[str]:
        """Compare-and-set many tasks with one statement per set of columns.

        The current versions are read first with the rows locked in one fixed order (on
        PostgreSQL; SQLite has one writer), so we know which changes hold; the UPDATE keeps
        the version check as the guard all the same.
        """
        if len(changes) == 1:
            # One row: a single conditional UPDATE is the whole compare-and-set.
            only = changes[0]
            single = {f"v_{k}": v for k, v in only.values.items()}
            single["w_id"] = only.task_id
            single["w_version"] = only.expected_version
            result = await conn.execute(_task_cas(tuple(sorted(only.values))), single)
            return [only.task_id] if result.rowcount == 1 else []
        firsts = first_changes(changes)
        current = dict((await conn.execute(_LOCK_VERSIONS, {"ids": list(firsts)})).all())
        holding, groups = holding_groups(firsts, current)
        for keys, group in groups.items():
            params = [
                {
                    "w_id": ch.task_id,
                    "w_version": ch.expected_version,
                    **{f"v_{key}": value for key, value in ch.values.items()},
                }
                for ch in group
            ]
            await conn.execute(_task_cas(keys), params)
        return [ch.task_id for ch in holding]

    # -- dispatch -------------------------------------------------------------------------
    # PostgreSQL reads every queue's due tasks in one statement (LATERAL); SQLite has no
    # LATERAL and asks queue by queue, which costs it no round trips.
    _due_in_one_statement = False

    async def due_tasks(
        self, now: datetime, redeliver_before: datetime, limit: int
    ) -> list[TaskRecord]:
        params = {"now": now, "redeliver_before": redeliver_before, "limit": limit}
        due: list[TaskRecord] = []
        async with self._tx() as conn:
            if self._due_in_one_statement:
                return [_task(row) for row in (await conn.execute(DUE_TASKS_LATERAL, params))]
            for (queue,) in (await conn.execute(QUEUES_WITH_QUEUED)).all():
                rows = await conn.execute(_DUE_OF_QUEUE, {**params, "queue": queue})
                due.extend(_task(row) for row in rows.all())
        due.sort(key=lambda task: (-task.priority, task.available_at or now, task.seq))
        return due[:limit]

    async def mark_published(self, task_ids: Sequence[str], at: datetime) -> None:
        if task_ids:
            async with self._tx() as conn:
                await conn.execute(
                    update(t.tasks).where(t.tasks.c.id.in_(list(task_ids))).values(published_at=at)
                )

    async def claim(
        self, task_ids: Sequence[str], worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        claimed: list[tuple[TaskRecord, AttemptRecord]] = []
        if not task_ids:
            return claimed
        now = await self.now()
        async with self._tx() as conn:
            params = {"ids": list(dict.fromkeys(task_ids))}
            return await self._claim_on(conn, _CLAIM, params, worker_id, lease_seconds, now)

    async def _claim_on(
        self,
        conn: Any,
        statement: Any,
        params: dict[str, Any],
        worker_id: str,
        lease_seconds: float,
        now: datetime,
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Run one claim statement and record an attempt for each task it moved."""
        rows = (await conn.execute(statement, {**params, "now": now, "due": self._due(now)})).all()
        tasks = [TaskRecord(**row._mapping) for row in rows]
        claimed = claimed_pairs(tasks, worker_id, now, now + timedelta(seconds=lease_seconds))
        if claimed:
            await conn.execute(
                _INSERT_ATTEMPTS,
                [{name: getattr(a, name) for name in AttemptRecord.__slots__} for _, a in claimed],
            )
        return claimed

    @abstractmethod
    async def claim_next(
        self, queue: str, limit: int, worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Each backend claims in its own fewest round trips (``pg_hot``, ``sqlite_hot``)."""

    async def live_attempts(self, attempt_ids: Sequence[str]) -> list[str]:
        if not attempt_ids:
            return []
        # Through the attempt's task id: tasks.attempt_id has no index, and a scan of every
        # stored task twice a second per worker grows with the store.
        query = (
            select(_A.id)
            .join(t.tasks, and_(_C.id == _A.task_id, _C.attempt_id == _A.id))
            .where(_A.id.in_(list(attempt_ids)), _C.status == TaskStatus.RUNNING.value)
        )
        async with self._tx() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    @abstractmethod
    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[str]:
        """Each backend reports in its own fewest round trips (``pg_hot``, ``sqlite_hot``)."""

    @abstractmethod
    async def finish_and_claim(
        self,
        outcomes: Sequence[AttemptOutcome],
        queue: str,
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[list[str], list[tuple[TaskRecord, AttemptRecord]]]:
        """Each backend in one transaction (``pg_hot``: one statement; ``sqlite_hot``)."""

    async def renew_leases(self, attempt_ids: Sequence[str], lease_seconds: float) -> list[str]:
        if not attempt_ids:
            return []
        now = await self.now()
        a, c = t.attempts.c, t.tasks.c
        live_task = (
            select(c.id)
            .where(c.id == a.task_id, c.attempt_id == a.id, c.status == TaskStatus.RUNNING.value)
            .exists()
        )
        async with self._tx() as conn:
            await conn.execute(
                update(t.attempts)
                .where(
                    a.id.in_(list(attempt_ids)), a.status == AttemptStatus.RUNNING.value, live_task
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            rows = (
                await conn.execute(
                    select(a.id).where(
                        a.id.in_(list(attempt_ids)),
                        a.status == AttemptStatus.RUNNING.value,
                        live_task,
                    )
                )
            ).all()
        return [r[0] for r in rows]

    async def expire_leases(self, delivery_limit: int, limit: int = 500) -> list[TaskRecord]:
        now = await self.now()
        a, c = t.attempts.c, t.tasks.c
        changed: list[TaskRecord] = []
        async with self._tx() as conn:
            query = (
                select(a.id, a.task_id)
                .where(a.status == AttemptStatus.RUNNING.value, a.lease_expires_at < now)
                .order_by(a.lease_expires_at)
                .limit(limit)
            )
            if self.skip_locked:
                # A second sweeper passes over rows the first holds instead of waiting on them.
                query = query.with_for_update(skip_locked=True)
            expired = (await conn.execute(query)).all()
            if expired:
                # Chaos tests freeze the sweeper here, between its read and its writes.
                await pause_point("sweep.after_read")
            # One fixed order of task locks keeps sweepers and writers from deadlocking.
            for attempt_id, task_id in sorted(expired, key=lambda row: (row[1], row[0])):
                won = await conn.execute(
                    update(t.attempts)
                    .where(
                        a.id == attempt_id,
                        a.status == AttemptStatus.RUNNING.value,
                        a.lease_expires_at < now,
                    )
                    .values(
                        status=AttemptStatus.LOST.value,
                        finished_at=now,
                        error="lease expired: the worker stopped heartbeating",
                    )
                )
                if won.rowcount != 1:
                    continue
                lost = (
                    await conn.execute(
                        select(func.count())
                        .select_from(t.attempts)
                        .where(a.task_id == task_id, a.status == AttemptStatus.LOST.value)
                    )
                ).scalar_one()
                if lost >= delivery_limit:
                    values: dict[str, Any] = {
                        "status": TaskStatus.FAILED.value,
                        "finished_at": now,
                        "error": f"poison task: its worker was lost {lost} times "
                        f"(delivery limit {delivery_limit})",
                    }
                else:
                    values = {
                        "status": TaskStatus.QUEUED.value,
                        "queued_at": now,
                        "available_at": now,
                        "published_at": None,
                    }
                row = (
                    await conn.execute(
                        update(t.tasks)
                        .where(
                            c.id == task_id,
                            c.attempt_id == attempt_id,
                            c.status == TaskStatus.RUNNING.value,
                        )
                        .values(**values, settled=False, version=c.version + 1)
                        .returning(*t.tasks.c)
                    )
                ).first()
                if row is not None:
                    changed.append(_task(row))
        return changed

    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        query = (
            select(t.attempts)
            .where(t.attempts.c.run_id == run_id)
            .order_by(t.attempts.c.started_at, t.attempts.c.number)
        )
        async with self._tx() as conn:
            return [_attempt(r) for r in (await conn.execute(query)).all()]

    async def mark_settled(self, task_ids: Sequence[str]) -> None:
        # Bookkeeping only (the coordinator has seen these finished tasks): no version bump.
        if task_ids:
            async with self._tx() as conn:
                await conn.execute(
                    update(t.tasks).where(t.tasks.c.id.in_(list(task_ids))).values(settled=True)
                )

    async def unsettled_run_ids(self, limit: int = 100) -> list[str]:
        c = t.tasks.c
        query = (
            select(c.run_id)
            .where(c.settled.is_(False), c.status.in_(_TERMINAL))
            .distinct()
            .limit(limit)
        )
        async with self._tx() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    # -- logs and events ------------------------------------------------------------------
    async def append_logs(self, logs: Sequence[NewLog]) -> None:
        if not logs:
            return
        async with self._tx() as conn:
            now = await self._clock(conn)
            rows = [
                {
                    "run_id": entry.run_id,
                    "task_id": entry.task_id,
                    "attempt_id": entry.attempt_id,
                    "at": now,
                    "stream": entry.stream,
                    "text": entry.text,
                }
                for entry in logs
            ]
            await conn.execute(insert(t.logs), rows)

    async def read_logs(self, task_id: str, after_id: int = 0, limit: int = 1000) -> list[LogChunk]:
        c = t.logs.c
        query = (
            select(c.id, c.task_id, c.attempt_id, c.at, c.stream, c.text)
            .where(c.task_id == task_id, c.id > after_id)
            .order_by(c.id)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [LogChunk(*r) for r in (await conn.execute(query)).all()]

    async def add_event(
        self, run_id: str, kind: str, actor: str, detail: dict[str, Any] | None = None
    ) -> None:
        async with self._tx() as conn:
            at = await self._clock(conn)
            await conn.execute(
                insert(t.events).values(
                    run_id=run_id, at=at, kind=kind, actor=actor, detail=detail or {}
                )
            )

    async def list_events(self, run_id: str) -> list[EventRecord]:
        c = t.events.c
        query = select(t.events).where(c.run_id == run_id).order_by(c.id)
        async with self._tx() as conn:
            return [
                EventRecord(r.id, r.run_id, r.at, r.kind, r.actor, r.detail)
                for r in (await conn.execute(query)).all()
            ]

    # -- workers --------------------------------------------------------------------------
    async def upsert_worker(self, worker: WorkerRecord) -> None:
        values = {name: getattr(worker, name) for name in WorkerRecord.__slots__}
        async with self._tx() as conn:
            result = await conn.execute(
                update(t.workers)
                .where(t.workers.c.id == worker.id)
                .values({k: v for k, v in values.items() if k not in {"id", "started_at"}})
            )
            if result.rowcount == 0:
                await conn.execute(insert(t.workers).values(values))

    async def list_workers(self) -> list[WorkerRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(t.workers).order_by(t.workers.c.id))).all()
        return [
            WorkerRecord(
                id=r.id,
                host=r.host,
                queues=r.queues,
                started_at=r.started_at,
                last_seen=r.last_seen,
                status=r.status,
                in_flight=r.in_flight,
                capabilities=r.capabilities,
            )
            for r in rows
        ]

    # -- retention ------------------------------------------------------------------------
    async def prune_runs(
        self,
        finished_before: datetime,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        total = 0
        while True:
            async with self._tx() as conn:
                ids = [
                    r[0]
                    for r in (
                        await conn.execute(
                            select(t.runs.c.id)
                            .where(
                                t.runs.c.status.in_(["completed", "failed", "cancelled"]),
                                t.runs.c.finished_at < finished_before,
                            )
                            .limit(batch)
                        )
                    ).all()
                ]
                if not ids:
                    return total
                for table in (t.logs, t.events, t.attempts, t.tasks, t.layers, *TRIGGER_RUN_TABLES):
                    await conn.execute(delete(table).where(table.c.run_id.in_(ids)))
                await conn.execute(delete(t.runs).where(t.runs.c.id.in_(ids)))
                total += len(ids)
            if on_batch is not None:
                on_batch(len(ids))

    # -- dashboard aggregates (treadle.store.stats.StoreStats) -----------------------------
    async def task_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Run id -> {task status: count}, one grouped read over the (run_id, seq) index."""
        if not run_ids:
            return {}
        query = (
            select(_C.run_id, _C.status, func.count())
            .where(_C.run_id.in_(list(run_ids)))
            .group_by(_C.run_id, _C.status)
        )
        counts: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
        async with self._tx() as conn:
            for run_id, status, count in (await conn.execute(query)).all():
                counts[run_id][status] = int(count)
        return counts

    async def queue_depths(self) -> dict[str, dict[str, int]]:
        """Queue -> {"queued": n, "running": n}; reads only unfinished tasks (partial indexes)."""
        depths: dict[str, dict[str, int]] = {}
        async with self._tx() as conn:
            for queue, status, count in (await conn.execute(_QUEUE_DEPTHS)).all():
                depths.setdefault(queue, {"queued": 0, "running": 0})[status] = int(count)
        return depths
