"""PostgreSQL store: the shared SQL logic over asyncpg, a connection pool and the server's clock.

URL forms: ``postgresql://user:pass@host:5432/db`` (also ``postgres://`` and
``postgresql+asyncpg://``). Query options treadle reads itself, and does not pass to the driver:

- ``schema=NAME`` (or ``search_path=NAME``): keep every table in that schema, created on
  ``migrate()`` when missing. Tests use it to isolate; deployments may share one database.
- ``pool_size=N`` and ``max_overflow=N``: size of the connection pool.
- ``connect_timeout=SECONDS``: how long to wait for the server before giving up.
- ``application_name=NAME``: how the sessions show in ``pg_stat_activity`` (default
  ``treadle``), so an operator (or a chaos test) can find one deployment's sessions.
- ``idle_in_transaction_timeout=SECONDS`` (default 10; 0: off): the server ends a session
  that sits inside a transaction doing nothing for that long. treadle's transactions never wait
  on anything but the database, so such a session belongs to a process that froze or lost its
  network mid-transaction; without the limit its row locks would hide its attempts from the
  lease sweeper (which skips locked rows) until the server noticed the dead connection, which
  takes hours with default TCP keepalives.
- ``pre_ping=true``: test each pooled connection with a round trip before using it. Off by
  default: a connection broken by a server restart fails one transaction (a one-line
  ServiceUnavailable, which every engine loop retries) and is then replaced, while a ping costs
  a round trip on every transaction.

The store's clock is the server's (leases and timers must agree across hosts), but reading it is
not a round trip per call: the offset between the server clock and the local one is sampled
(midpoint of a ``clock_timestamp()`` round trip) and refreshed every few seconds.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from treadle.errors import ConfigError, Conflict, NotFound, ServiceUnavailable
from treadle.store import pg_hot, pg_pass, pg_submit
from treadle.store.batch import Applied
from treadle.store.claims import claimed_pairs
from treadle.store.delta import RunDelta, fingerprinted_rows
from treadle.store.migrate import alembic_config
from treadle.store.pg_raw import RawPool
from treadle.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DecisionWrite,
    LayerRecord,
    RunRecord,
    TaskChange,
    TaskRecord,
)
from treadle.store.sql import (
    RunWrite,
    SqlStore,
    decision_parts,
    decision_results,
    first_changes,
    holding_groups,
    layer_record,
    run_deltas,
    tasks_by_run,
    utcnow,
)
from treadle.store.stepping import RunFingerprint, StepResult

SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Any constant works: it only has to be the same for every treadle process on a database.
_MIGRATION_LOCK = 0x7472_6561_646C
# Seconds between two samples of the server clock's offset.
CLOCK_REFRESH_SECONDS = 5.0
# Round trips per sample; the fastest one is kept (its midpoint is the least uncertain).
CLOCK_ROUND_TRIPS = 4


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """What :func:`parse_postgres_url` reads from a URL."""

    driver_url: URL
    schema: str | None
    pool_size: int
    max_overflow: int
    connect_timeout: float
    pre_ping: bool = False
    application_name: str = "treadle"
    idle_in_transaction_timeout: int = 10

    @property
    def public_url(self) -> str:
        """The URL to show: the ``postgresql://`` form with the password masked."""
        query = {"schema": self.schema} if self.schema else {}
        url = self.driver_url.set(drivername="postgresql", query=query)
        return url.render_as_string(hide_password=True)


def _int_option(options: dict[str, Any], name: str, default: int) -> int:
    raw = options.pop(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"postgres URL option {name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"postgres URL option {name}={raw!r} must not be negative")
    return value


def parse_postgres_url(url: str) -> PostgresSettings:
    """Split a PostgreSQL URL into the driver URL and treadle's own options."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"cannot parse postgres URL: {exc}") from None
    if parsed.drivername not in SCHEMES:
        raise ConfigError(
            f"not a postgres URL: scheme {parsed.drivername!r} (use postgresql://...)"
        )
    options: dict[str, Any] = dict(parsed.query)
    schema = options.pop("schema", None) or options.pop("search_path", None)
    options.pop("search_path", None)
    if isinstance(schema, tuple):
        raise ConfigError("postgres URL names more than one schema")
    if schema is not None and not _IDENTIFIER.match(schema):
        raise ConfigError(
            f"postgres schema {schema!r} is not a plain identifier "
            "(letters, digits and _, not starting with a digit)"
        )
    pool_size = _int_option(options, "pool_size", 10)
    max_overflow = _int_option(options, "max_overflow", 10)
    connect_timeout = float(_int_option(options, "connect_timeout", 10))
    application_name = str(options.pop("application_name", "treadle"))
    idle_timeout = _int_option(options, "idle_in_transaction_timeout", 10)
    pre_ping_raw = str(options.pop("pre_ping", "false")).lower()
    if pre_ping_raw not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"postgres URL option pre_ping={pre_ping_raw!r} is not true or false")
    return PostgresSettings(
        driver_url=parsed.set(drivername="postgresql+asyncpg", query=options),
        schema=schema,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_timeout=connect_timeout,
        pre_ping=pre_ping_raw in {"true", "1", "yes"},
        application_name=application_name,
        idle_in_transaction_timeout=idle_timeout,
    )


class PostgresStore(SqlStore):
    """PostgreSQL through asyncpg: a pooled engine, leases on the server clock."""

    skip_locked = True
    _due_in_one_statement = True

    def __init__(
        self, url: str, *, pool_size: int | None = None, max_overflow: int | None = None
    ) -> None:
        settings = parse_postgres_url(url)
        server_settings = {
            "application_name": settings.application_name,
            "idle_in_transaction_session_timeout": str(settings.idle_in_transaction_timeout * 1000),
            # Every statement here is short. Once a run's tasks numbered in the thousands the
            # planner's cost estimate for a pass's read passed jit_above_cost, and compiling it
            # took 0.6-0.8 s on each call, for about 1 ms of execution.
            "jit": "off",
        }
        if settings.schema:
            # Set on every new connection, so every statement (and Alembic) sees only our schema.
            server_settings["search_path"] = settings.schema
        connect_args: dict[str, Any] = {
            "timeout": settings.connect_timeout,
            "server_settings": server_settings,
        }
        engine = create_async_engine(
            settings.driver_url,
            pool_size=pool_size if pool_size is not None else settings.pool_size,
            max_overflow=max_overflow if max_overflow is not None else settings.max_overflow,
            pool_pre_ping=settings.pre_ping,
            connect_args=connect_args,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        super().__init__(engine, settings.public_url)
        self.schema = settings.schema
        _, raw_kwargs = engine.dialect.create_connect_args(engine.url)
        # The hot statements are few and prepared once per connection; planning one anew on
        # every call (PostgreSQL's choice while the generic plan's estimate looks worse) cost
        # more than running it: about 1 ms for the report that reads its runs (pg_hot).
        # A generic plan is made once per connection, with the statistics of that moment:
        # made while the tables were small (a new store, before autovacuum's first ANALYZE)
        # it kept scanning whole tables as they grew (tasks/s fell by two thirds over 30,000
        # tasks). Every hot statement is meant to go through an index: say so.
        raw_settings = {
            **server_settings,
            "plan_cache_mode": "force_generic_plan",
            "enable_seqscan": "off",
        }
        self._raw_pool = RawPool(
            {**raw_kwargs, **connect_args, "server_settings": raw_settings},
            engine.pool.size(),  # type: ignore[attr-defined]
        )
        self._offset: timedelta | None = None
        self._offset_at = 0.0
        self._uncertainty = 0.0
        self._last = datetime.min.replace(tzinfo=utcnow().tzinfo)

    @contextlib.asynccontextmanager
    async def _raw(self) -> AsyncIterator[Any]:
        """A connection of the hot statements' pool (``pg_raw``), outside any transaction.

        Errors read like those of :meth:`_tx`: the store is unavailable, in one line. A
        connection that failed for any reason but a server-side error of the statement is
        closed rather than handed to the next caller in an unknown state.
        """
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(self._raw_pool.connection())
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                reason = (str(exc) or type(exc).__name__).strip().splitlines()[0]
                raise ServiceUnavailable(f"store {self.url} unreachable: {reason}") from exc
            try:
                yield conn
            except asyncpg.IntegrityConstraintViolationError:
                raise
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.PostgresConnectionError):
                    _drop(conn)
                reason = (str(exc) or type(exc).__name__).strip().splitlines()[0]
                raise ServiceUnavailable(f"store {self.url}: {reason}") from exc
            except (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,  # a killed session can leave the client mid-call
                OSError,
                TimeoutError,
            ) as exc:
                _drop(conn)
                raise ServiceUnavailable(f"store {self.url} unreachable: {exc}") from exc
            except BaseException:
                _drop(conn)
                raise

    async def close(self) -> None:
        await self._raw_pool.close()
        await super().close()

    async def claim_next(
        self, queue: str, limit: int, worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        return await self._claim_raw(queue, limit, worker_id, lease_seconds)

    async def claim(
        self, task_ids: Sequence[str], worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        ids = list(dict.fromkeys(task_ids))
        return await self._claim_raw(ids, len(ids), worker_id, lease_seconds)

    async def _claim_raw(
        self, which: str | list[str], limit: int, worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """One claim statement: of a queue's best tasks (``which`` a queue) or given ids."""
        if limit <= 0:
            return []
        now = await self.now()
        lease = now + timedelta(seconds=lease_seconds)
        statement = pg_hot.CLAIM_NEXT if isinstance(which, str) else pg_hot.CLAIM_IDS
        args = pg_hot.claim_args(which, limit, self._due(now), now, worker_id, lease)
        async with self._raw() as conn:
            rows = await conn.fetch(statement, *args)
        return claimed_pairs(pg_hot.claimed_tasks(rows), worker_id, now, lease)

    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[str]:
        if not outcomes:
            return []
        now = await self.now()
        async with self._raw() as conn:
            rows = await conn.fetch(
                pg_hot.FINISH_ATTEMPTS, *pg_hot.finish_args(outcomes, now, _json_dumps)
            )
        return [row[0] for row in rows]

    async def create_run(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord],
        layers: Sequence[LayerRecord] = (),
        events: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        if layers:
            await super().create_run(run, tasks, layers, events)
            return
        args = pg_submit.create_run_args(run, tasks, events, _json_dumps)
        try:
            async with self._raw() as conn:
                await conn.execute(pg_submit.CREATE_RUN, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(f"run {run.id!r} or one of its tasks exists already") from exc

    async def finish_and_claim(
        self,
        outcomes: Sequence[AttemptOutcome],
        queue: str,
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[list[str], list[tuple[TaskRecord, AttemptRecord]]]:
        if limit <= 0:
            return await self.finish_attempts(outcomes), []
        if not outcomes:
            return [], await self.claim_next(queue, limit, worker_id, lease_seconds)
        now = await self.now()
        lease = now + timedelta(seconds=lease_seconds)
        args = (
            *pg_hot.finish_args(outcomes, now, _json_dumps),
            queue,
            self._due(now),
            limit,
            worker_id,
            lease,
        )
        async with self._raw() as conn:
            rows = await conn.fetch(pg_hot.FINISH_AND_CLAIM, *args)
        accepted, tasks = pg_hot.finish_and_claim_results(rows)
        return accepted, claimed_pairs(tasks, worker_id, now, lease)

    async def get_tasks_many(self, run_ids: Sequence[str]) -> list[list[TaskRecord]]:
        async with self._raw() as conn:
            records = await conn.fetch(pg_pass.GET_TASKS, list(dict.fromkeys(run_ids)))
        return tasks_by_run(run_ids, [TaskRecord(**dict(record.items())) for record in records])

    async def load_run_deltas(
        self, requests: Sequence[tuple[str, bool]]
    ) -> list[RunDelta | NotFound]:
        ids, layered, cached, full = self._delta_reads(requests)
        runs: dict[str, RunRecord] = {}
        async with self._raw() as conn:
            full_rows = await conn.fetch(pg_pass.GET_RUNS, full) if full else []
            if full:
                light_rows = (
                    await conn.fetch(pg_pass.GET_RUNS_LIGHT, list(cached)) if cached else []
                )
                joined = await conn.fetch(pg_pass.OPEN_ROWS, ids)
            else:
                # Every run's immutable columns are here: its row comes with its task rows.
                records = await conn.fetch(pg_pass.OPEN_ROWS_WITH_RUNS, ids)
                joined = self._open_rows_with_runs(records, 0, cached, runs)
                taskless = [run_id for run_id in ids if run_id not in runs]
                light_rows = await conn.fetch(pg_pass.GET_RUNS_LIGHT, taskless) if taskless else []
            layer_rows = await conn.fetch(pg_pass.GET_LAYERS, layered) if layered else []
        for record in full_rows:
            runs[record["id"]] = self._run_from(pg_pass.as_mapping(record), None)
        for record in light_rows:
            run_id = record["id"]
            runs[run_id] = self._run_from(pg_pass.as_mapping(record), cached[run_id])
        fingerprints, open_rows = fingerprinted_rows(joined)
        layers: dict[str, list[LayerRecord]] = {}
        for record in layer_rows:
            layers.setdefault(record["run_id"], []).append(layer_record(pg_pass.as_mapping(record)))
        return run_deltas(requests, runs, fingerprints, open_rows, layers)

    def _open_rows_with_runs(
        self,
        records: Sequence[Any],
        start: int,
        cached: Mapping[str, tuple[Any, Any]],
        runs: dict[str, RunRecord],
    ) -> list[Sequence[Any]]:
        """The open rows of records shaped as ``OPEN_ROWS_WITH_RUNS`` from column ``start``
        on; each run met is added to ``runs``. Records without a run are skipped."""
        width = start + pg_pass.OPEN_ROWS_WIDTH
        joined = []
        for record in records:
            run_id = record[start]
            if run_id is None:
                continue
            joined.append(record[start:width])
            if run_id not in runs:
                light = zip(pg_pass.RUN_LIGHT_COLUMNS, record[width:], strict=True)
                runs[run_id] = self._run_from(dict(light), cached[run_id])
        return joined

    async def finish_and_read(
        self, outcomes: Sequence[AttemptOutcome], requests: Sequence[tuple[str, bool]]
    ) -> tuple[list[str], list[RunDelta | NotFound]]:
        """A report and the pass reads of its runs in one statement (``FINISH_AND_READ``)
        when this process holds the runs' immutable columns and no layers are wanted."""
        ids, layered, cached, full = self._delta_reads(requests)
        if not outcomes or full or layered:
            return await self.finish_attempts(outcomes), await self.load_run_deltas(requests)
        now = await self.now()
        args = (*pg_hot.finish_args(outcomes, now, _json_dumps), ids)
        async with self._raw() as conn:
            records = await conn.fetch(pg_hot.FINISH_AND_READ, *args)
            runs: dict[str, RunRecord] = {}
            joined = self._open_rows_with_runs(records, 1, cached, runs)
            taskless = [run_id for run_id in ids if run_id not in runs]
            light_rows = await conn.fetch(pg_pass.GET_RUNS_LIGHT, taskless) if taskless else []
        for record in light_rows:
            runs[record["id"]] = self._run_from(pg_pass.as_mapping(record), cached[record["id"]])
        accepted = list(records[0]["accepted_ids"] or []) if records else []
        fingerprints, open_rows = fingerprinted_rows(joined)
        return accepted, run_deltas(requests, runs, fingerprints, open_rows, {})

    async def apply_decisions(
        self, writes: Sequence[DecisionWrite]
    ) -> list[tuple[list[str], RunRecord | None]]:
        changes, settled, run_writes = decision_parts(writes)
        won: set[str] = set()
        updated: dict[str, RunRecord] = {}
        now = await self.now() if any(run_events for _, run_events in run_writes) else None
        if not run_writes and len(changes) <= 1 and not {c.task_id for c in changes} & set(settled):
            # A pass that queues one task and settles finished ones (a chain's step) is one
            # statement, atomic on its own: no BEGIN and COMMIT round trips.
            async with self._raw() as conn:
                if changes:
                    won.update(await self._raw_task_cas(conn, changes, settled))
                elif settled:
                    await conn.execute(pg_pass.MARK_SETTLED, settled)
        else:
            async with self._raw() as conn, conn.transaction():
                await self._raw_write(conn, changes, settled, run_writes, now, won, updated)
        return decision_results(writes, won, updated)

    async def apply_and_claim(
        self,
        write: DecisionWrite,
        claim_ids: Sequence[str],
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]:
        """A chain step's write and its claim in one statement (``pg_pass.queue_and_claim``);
        any other write is applied, then its queued tasks among ``claim_ids`` claimed."""
        change = pg_pass.claimable_change(write, claim_ids)
        if change is None:
            (applied,) = await self.apply_decisions([write])
            won = set(applied[0])
            ids = [task_id for task_id in claim_ids if task_id in won]
            return applied, await self.claim(ids, worker_id, lease_seconds)
        now = await self.now()
        lease = now + timedelta(seconds=lease_seconds)
        keys = pg_pass.queued_keys(change)
        args = [
            *pg_pass.task_cas_args(change, keys, _json_dumps),
            list(write.settled),
            now,
            worker_id,
            lease,
        ]
        async with self._raw() as conn:
            rows = await conn.fetch(pg_pass.queue_and_claim(keys), *args)
        tasks = pg_hot.claimed_tasks(rows)
        return ([change.task_id] if tasks else [], None), claimed_pairs(
            tasks, worker_id, now, lease
        )

    async def apply_and_claim_many(
        self,
        requests: Sequence[tuple[DecisionWrite, Sequence[str]]],
        worker_id: str,
        lease_seconds: float,
    ) -> list[tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]]:
        """Each ``(write, claim_ids)`` as :meth:`apply_and_claim` applies it; the chain steps
        among them (of several runs) in one statement (``pg_pass.queue_and_claim_many``)."""
        steps: dict[tuple[str, ...], list[tuple[int, TaskChange]]] = {}
        for index, (write, claim_ids) in enumerate(requests):
            change = pg_pass.claimable_change(write, claim_ids)
            if change is not None:
                steps.setdefault(pg_pass.queued_keys(change), []).append((index, change))
        groups = {keys: group for keys, group in steps.items() if len(group) > 1}
        batched = {index for group in groups.values() for index, _ in group}
        results: dict[int, tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]] = {}
        for index, (write, claim_ids) in enumerate(requests):
            if index not in batched:
                results[index] = await self.apply_and_claim(
                    write, claim_ids, worker_id, lease_seconds
                )
        for keys, group in groups.items():
            group.sort(key=lambda item: item[1].task_id)
            settled = sorted({i for index, _ in group for i in requests[index][0].settled})
            now = await self.now()
            lease = now + timedelta(seconds=lease_seconds)
            args = [
                *pg_pass.queue_and_claim_many_args([c for _, c in group], keys, _json_dumps),
                settled,
                now,
                worker_id,
                lease,
            ]
            async with self._raw() as conn:
                rows = await conn.fetch(pg_pass.queue_and_claim_many(keys), *args)
            claimed = claimed_pairs(pg_hot.claimed_tasks(rows), worker_id, now, lease)
            pairs = {task.id: (task, attempt) for task, attempt in claimed}
            for index, change in group:
                pair = pairs.get(change.task_id)
                results[index] = (([change.task_id], None), [pair]) if pair else (([], None), [])
        return [results[index] for index in range(len(requests))]

    def as_stored(self, value: Any) -> Any:
        """``value`` as reading it back from a JSON column returns it."""
        return orjson.loads(_json_dumps(value))

    async def finish_and_step(
        self,
        outcome: AttemptOutcome,
        expected: RunFingerprint,
        change: TaskChange,
        worker_id: str,
        lease_seconds: float,
        now: datetime,
    ) -> StepResult:
        """A report and the step decided ahead of it in one statement
        (``pg_hot.finish_and_step``; ``store/stepping.py``)."""
        lease = now + timedelta(seconds=lease_seconds)
        keys = pg_pass.queued_keys(change)
        args = [
            *pg_hot.finish_args([outcome], now, _json_dumps),
            expected.run_id,
            expected.run_version,
            expected.task_count,
            expected.version_sum,
            worker_id,
            lease,
            *pg_pass.task_cas_args(change, keys, _json_dumps),
        ]
        async with self._raw() as conn:
            rows = await conn.fetch(pg_hot.finish_and_step(keys), *args)
        # One row, shaped as FINISH_AND_CLAIM's (accepted ids first, the claimed task's
        # columns empty when nothing was claimed), with the guard and the reported version.
        accepted, claimed = pg_hot.finish_and_claim_results(rows)
        (row,) = rows
        return StepResult(
            accepted,
            bool(accepted) and bool(row["stepped"]),
            row["reported_version"],
            claimed_pairs(claimed, worker_id, now, lease),
        )

    async def _raw_write(
        self,
        conn: Any,
        changes: Sequence[TaskChange],
        settled: Sequence[str],
        run_writes: Sequence[RunWrite],
        now: datetime | None,
        won: set[str],
        updated: dict[str, RunRecord],
    ) -> None:
        """The general write, inside the caller's transaction."""
        events: list[tuple[str, str, str, Any]] = []
        if changes:
            won.update(await self._raw_task_cas(conn, changes))
        if settled:
            await conn.execute(pg_pass.MARK_SETTLED, settled)
        for (run_id, version, values), run_events in run_writes:
            keys, args = pg_pass.run_cas_args(run_id, version, values, _json_dumps)
            immutable = self._immutable.get(run_id)
            record = await conn.fetchrow(pg_pass.run_cas(keys, immutable is not None), *args)
            if record is None:
                continue
            updated[run_id] = self._run_from(pg_pass.as_mapping(record), immutable)
            events.extend(run_events)
        if events:
            # Recorded only with the run's update that produced them.
            columns = [list(column) for column in zip(*events, strict=True)]
            columns[3] = [_json_dumps(detail) for detail in columns[3]]
            await conn.execute(pg_pass.INSERT_EVENTS, *columns, now)

    async def _raw_task_cas(
        self, conn: Any, changes: Sequence[TaskChange], settled: Sequence[str] = ()
    ) -> list[str]:
        """Compare-and-set tasks on the raw connection (see :meth:`SqlStore._cas_batch`).

        ``settled`` (only with a single change, which it must not hold) is marked settled in
        the same statement."""
        if len(changes) == 1:
            only = changes[0]
            keys = tuple(sorted(only.values))
            args = pg_pass.task_cas_args(only, keys, _json_dumps)
            if settled:
                status = await conn.execute(pg_pass.settle_and_task_cas(keys), *args, settled)
            else:
                status = await conn.execute(pg_pass.task_cas(keys), *args)
            return [only.task_id] if status == "UPDATE 1" else []
        assert not settled, "settled ids ride along with a single change only"
        firsts = first_changes(changes)
        current = dict(await conn.fetch(pg_pass.LOCK_VERSIONS, list(firsts)))
        holding, groups = holding_groups(firsts, current)
        for keys, group in groups.items():
            await conn.executemany(
                pg_pass.task_cas(keys),
                [pg_pass.task_cas_args(change, keys, _json_dumps) for change in group],
            )
        return [change.task_id for change in holding]

    async def migrate(self) -> None:
        """Create the schema if missing, then run the Alembic migrations.

        An advisory lock makes processes that start together migrate one after another.
        """

        def _upgrade(connection: Any) -> None:
            from alembic import command

            command.upgrade(alembic_config(connection), "head")

        async with self._tx() as conn:
            await conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            if self.schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            await conn.run_sync(_upgrade)

    def _stale(self) -> bool:
        return self._offset is None or time.monotonic() - self._offset_at > CLOCK_REFRESH_SECONDS

    async def now(self) -> datetime:
        if self._stale():
            async with self._raw() as conn:
                await self._sample_clock(conn)
        return self._estimate()

    async def _clock(self, conn: AsyncConnection) -> datetime:
        # Sampled on the transaction's own connection (a second one could starve the pool).
        if self._stale():
            raw = await conn.get_raw_connection()
            await self._sample_clock(raw.driver_connection)
        return self._estimate()

    async def _sample_clock(self, conn: Any) -> None:
        """Estimate the server clock's offset from the fastest of a few bare round trips.

        The offset is the server's stamp less the midpoint of its round trip, so any time spent
        on one leg only (a slow client building the query, a busy loop reading the answer)
        shifts the estimate by half of it; a round trip through asyncpg alone, the quickest of
        several, keeps that error to a few microseconds.
        """
        best: tuple[float, timedelta] | None = None
        for _ in range(CLOCK_ROUND_TRIPS):
            # clock_timestamp(), not now(): now() stays at the start of the transaction.
            sent = utcnow()
            stamp = await conn.fetchval("SELECT clock_timestamp()")
            received = utcnow()
            assert isinstance(stamp, datetime)
            half = (received - sent).total_seconds() / 2
            if best is None or half < best[0]:
                best = (half, stamp - (sent + (received - sent) / 2))
        assert best is not None
        self._uncertainty, self._offset = best
        self._offset_at = time.monotonic()

    def _due(self, now: datetime) -> datetime:
        # Two processes' estimates of the server clock differ by up to the sum of their sample
        # errors: a task another process made available "now" must not look early to us.
        return now + timedelta(seconds=min(0.25, 0.005 + 4 * self._uncertainty))

    def _estimate(self) -> datetime:
        assert self._offset is not None
        # Never step back when a new sample moves the offset by a fraction of a millisecond.
        self._last = max(self._last, utcnow() + self._offset)
        return self._last


def _drop(conn: Any) -> None:
    """Close a raw connection in an unknown state rather than reuse it (a connection the
    server ended may have gone back to its pool by itself already)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
