"""PostgreSQL broker: a table of messages taken with ``FOR UPDATE SKIP LOCKED``.

``postgresql://user@host/db?schema=s&visibility_timeout=60&poll_interval=1``

A taken message stays in the table, invisible until ``visible_at``; ack deletes it, nack makes it
visible now, and a consumer that dies simply lets ``visible_at`` pass (the visibility timeout).
Every take bumps ``deliveries``, which fences acks and nacks: a consumer whose message was retaken
by another can no longer delete or release it. ``LISTEN/NOTIFY`` only wakes consumers early; a
poll every ``poll_interval`` seconds finds messages whose notification was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from treadle.broker._common import (
    COMMON_OPTIONS,
    Backoff,
    Closed,
    HeldDelivery,
    UrlOptions,
    Window,
    check_cancelled,
    check_queue,
    one_line,
    redact,
    release_all,
    retry,
)
from treadle.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_OPTIONS = COMMON_OPTIONS | {"schema", "poll_interval", "pool_size"}
_CHANNEL = "treadle_broker"
# SQLSTATE classes worth retrying: connection exception, insufficient resources, operator
# intervention (admin shutdown, crash shutdown, cannot connect now).
_TRANSIENT_CLASSES = {"08", "53", "57"}


def _transient(exc: BaseException) -> bool:
    if isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _TRANSIENT_CLASSES
    return False


async def _keep_session(_conn: Any) -> None:
    """Skip asyncpg's reset on release: we keep no session state (every call is one
    autocommit statement, LISTEN has its own connection), and the reset costs a round trip per
    ack, which tripled the time of a publish/consume/ack cycle."""


class PostgresDelivery(HeldDelivery):
    """A taken row, fenced by the ``deliveries`` count it was taken with."""

    __slots__ = ("_broker", "_deliveries", "_id", "_queue")

    def __init__(
        self,
        broker: PostgresBroker,
        row: Any,
        queue: str,
        window: Window,
        held: set[HeldDelivery],
    ) -> None:
        super().__init__(row["body"], window, held)
        self._broker = broker
        self._id: int = row["id"]
        self._deliveries: int = row["deliveries"]
        self._queue = queue

    async def _settle(self, ack: bool) -> None:
        await self._broker._settle(self._id, self._deliveries, self._queue, ack)

    @classmethod
    async def settle_many(cls, deliveries: Sequence[HeldDelivery], ack: bool) -> None:
        """One statement per (broker, queue) instead of one per message."""
        groups: dict[tuple[int, str], list[PostgresDelivery]] = {}
        for delivery in deliveries:
            assert isinstance(delivery, PostgresDelivery)
            groups.setdefault((id(delivery._broker), delivery._queue), []).append(delivery)
        for group in groups.values():
            first = group[0]

            async def send(todo: list[HeldDelivery], first: PostgresDelivery = first) -> None:
                rows = [d for d in todo if isinstance(d, PostgresDelivery)]
                await first._broker._settle_many(
                    [d._id for d in rows], [d._deliveries for d in rows], first._queue, ack
                )

            await cls._settle_batch(group, ack, send)


class PostgresBroker:
    """Work queues in one table of a PostgreSQL schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        opts = UrlOptions.parse(url, _OPTIONS)
        dsn = opts.driver_url
        for alias in ("postgresql+asyncpg://", "postgres+asyncpg://"):
            if dsn.startswith(alias):
                dsn = "postgresql://" + dsn[len(alias) :]
        self._dsn = dsn
        self._schema = opts.name("schema", "public")
        self._table = f'"{self._schema}".treadle_broker_messages'
        self._visibility = opts.number("visibility_timeout", 60.0, 0.05)
        self._poll = opts.number("poll_interval", 1.0, 0.01)
        self._pool_size = int(opts.number("pool_size", 10, 1))
        self._connect_timeout = opts.number("connect_timeout", 5.0, 0.1)
        self._publish_timeout = opts.number("publish_timeout", 30.0, 0.1)
        self._backoff = Backoff(
            opts.number("retry_initial", 0.1, 0.001), opts.number("retry_max", 5.0, 0.01)
        )
        self._pool: Any = None
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._wakeups: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._consumers: dict[Window, set[HeldDelivery]] = {}
        self._stopping = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the pool, create the schema and table if missing, and start listening."""
        # Takes, acks and nacks commit asynchronously: losing one in a server crash only means
        # a redelivery (this is a doorbell; the store holds the truth), and waiting for the WAL
        # flush on every ack cost ~1 ms each. Publishes switch it back on for their commit.
        server_settings = {"synchronous_commit": "off"}
        if "application_name=" not in self._dsn:
            server_settings["application_name"] = "treadle-broker"
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                command_timeout=max(30.0, self._publish_timeout),
                server_settings=server_settings,
                reset=_keep_session,
            )
            await self._pool.execute(self._ddl())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._drop_pool()
            raise ServiceUnavailable(
                f"PostgreSQL broker at {redact(self._dsn)} is unreachable: {one_line(exc)}"
            ) from exc
        self._listen_task = asyncio.create_task(self._listen_forever(server_settings))

    async def ping(self) -> None:
        """One ``SELECT 1`` through the pool, bounded by the connect timeout."""
        if self._pool is None or self._closed:
            raise ServiceUnavailable("PostgreSQL broker is not connected")
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), self._connect_timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ServiceUnavailable(
                f"PostgreSQL broker at {redact(self._dsn)} does not answer: {one_line(exc)}"
            ) from exc

    def _ddl(self) -> str:
        # The advisory lock makes concurrent first connects safe: CREATE ... IF NOT EXISTS
        # alone can still race on the catalog.
        return f"""
        DO $$ BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('treadle_broker:{self._schema}'));
        END $$;
        CREATE SCHEMA IF NOT EXISTS "{self._schema}";
        CREATE TABLE IF NOT EXISTS {self._table} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            queue text NOT NULL,
            body text NOT NULL,
            visible_at timestamptz NOT NULL DEFAULT now(),
            deliveries integer NOT NULL DEFAULT 0,
            enqueued_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS treadle_broker_messages_ready
            ON {self._table} (queue, visible_at, id);
        """

    async def close(self) -> None:
        """Stop consumers, give back messages still held, and close every connection."""
        if self._closed:
            return
        self._stopping = True
        self._wake_everyone()
        if self._pool is not None:
            await release_all(set().union(*self._consumers.values()), timeout=2.0)
        self._closed = True
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
        await self._close_listener()
        await self._drop_pool()

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), 5.0)
        except Exception:
            pool.terminate()

    def _wake_everyone(self) -> None:
        for events in self._wakeups.values():
            for event in events:
                event.set()
        for window in self._consumers:
            window.wake()

    # -- plumbing ----------------------------------------------------------------------------
    async def _run(self, what: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        async def recover() -> None:
            return None  # the pool replaces broken connections on the next acquire

        return await retry(
            call,
            what=f"PostgreSQL broker: {what}",
            logger=log,
            transient=_transient,
            recover=recover,
            backoff=self._backoff,
            is_closed=lambda: self._closed or self._pool is None,
            deadline=deadline,
        )

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        """One statement on a pooled connection; a connection that failed is never reused.

        After a server-side kill asyncpg can leave a connection in a state where every later
        call fails ("another operation is in progress"); terminating it makes the pool open a
        fresh one instead.
        """
        if self._pool is None:
            raise Closed("PostgreSQL broker is not connected")
        async with self._pool.acquire(timeout=self._connect_timeout) as conn:
            try:
                return await getattr(conn, method)(sql, *args)
            except BaseException as exc:
                if not isinstance(exc, asyncpg.PostgresError) or _transient(exc):
                    conn.terminate()
                raise

    def _payload(self, queue: str) -> str:
        return f"{self._schema}:{queue}"

    # -- publish -----------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        """Insert the bodies and notify listeners, in one statement (one transaction)."""
        check_queue(queue)
        if not bodies:
            return
        sql = f"""
        WITH ins AS (INSERT INTO {self._table} (queue, body) SELECT $1, unnest($2::text[])
                     RETURNING 1)
        SELECT pg_notify($3, $4), (SELECT count(*) FROM ins),
               set_config('synchronous_commit', 'on', true)
        """
        items = list(bodies)
        await self._run(
            f"publish to {queue!r}",
            lambda: self._call("execute", sql, queue, items, _CHANNEL, self._payload(queue)),
            time.monotonic() + self._publish_timeout,
        )

    # -- consume -----------------------------------------------------------------------------
    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[PostgresDelivery]:
        """Take up to the free part of the window at a time; sleep until NOTIFY or the poll."""
        check_queue(queue)
        window = Window(prefetch)
        held: set[HeldDelivery] = set()
        wakeup = asyncio.Event()
        self._consumers[window] = held
        self._wakeups[queue].add(wakeup)
        try:
            while not self._stopping:
                free = await window.wait_free()
                if self._stopping:
                    break
                if not free:
                    continue
                wakeup.clear()
                try:
                    rows = await self._take(queue, free)
                except Closed:
                    break
                check_cancelled()
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), self._poll)
                    continue
                window.take(len(rows))
                batch = [PostgresDelivery(self, r, queue, window, held) for r in rows]
                for delivery in batch:
                    if self._stopping:
                        break  # the rest of the batch is released below
                    yield delivery
        finally:
            self._consumers.pop(window, None)
            self._wakeups[queue].discard(wakeup)
            await release_all(held, timeout=2.0)

    async def _take(self, queue: str, count: int) -> list[Any]:
        sql = f"""
        WITH picked AS (
            SELECT id FROM {self._table}
            WHERE queue = $1 AND visible_at <= now()
            ORDER BY visible_at, id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {self._table} AS m
        SET visible_at = now() + make_interval(secs => $3), deliveries = m.deliveries + 1
        FROM picked WHERE m.id = picked.id
        RETURNING m.id, m.body, m.deliveries
        """
        rows = await self._run(
            f"take from {queue!r}",
            lambda: self._call("fetch", sql, queue, count, self._visibility),
            None,
        )
        return sorted(rows, key=lambda r: r["id"])

    async def _settle(self, row_id: int, deliveries: int, queue: str, ack: bool) -> None:
        await self._settle_many([row_id], [deliveries], queue, ack)

    async def _settle_many(
        self, row_ids: list[int], deliveries: list[int], queue: str, ack: bool
    ) -> None:
        """:meth:`_settle` for many rows of one queue, each fenced by its delivery count."""
        if ack:
            sql = f"""
            DELETE FROM {self._table} AS m
            USING unnest($1::bigint[], $2::integer[]) AS d(id, deliveries)
            WHERE m.id = d.id AND m.deliveries = d.deliveries
            """
            args: tuple[Any, ...] = (row_ids, deliveries)
        else:
            sql = f"""
            WITH u AS (
                UPDATE {self._table} AS m SET visible_at = now()
                FROM unnest($1::bigint[], $2::integer[]) AS d(id, deliveries)
                WHERE m.id = d.id AND m.deliveries = d.deliveries
                RETURNING 1
            )
            SELECT pg_notify($3, $4) WHERE EXISTS (SELECT 1 FROM u)
            """
            args = (row_ids, deliveries, _CHANNEL, self._payload(queue))
        await self._run(
            "ack" if ack else "nack",
            lambda: self._call("execute", sql, *args),
            time.monotonic() + min(10.0, self._publish_timeout),
        )

    # -- LISTEN ------------------------------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, _, queue = payload.partition(":")
        if schema == self._schema:
            for event in self._wakeups.get(queue, ()):
                event.set()

    async def _listen_forever(self, server_settings: dict[str, str]) -> None:
        """Keep one LISTEN connection up; while it is down, consumers still poll."""
        backoff = Backoff(self._backoff.initial, self._backoff.cap)
        while not self._closed:
            try:
                lost = asyncio.Event()
                self._listener = await asyncpg.connect(
                    self._dsn, timeout=self._connect_timeout, server_settings=server_settings
                )
                self._listener.add_termination_listener(lambda _c, done=lost: done.set())
                await self._listener.add_listener(_CHANNEL, self._on_notify)
                if backoff.attempt:
                    log.info("PostgreSQL broker: LISTEN connection restored")
                backoff.reset()
                self._wake_everyone()  # notifications may have been missed while down
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                log.warning(
                    "PostgreSQL broker: LISTEN connection failed (%s); retry %d in %.2fs",
                    one_line(exc),
                    backoff.attempt,
                    delay,
                )
                await self._close_listener()
                await asyncio.sleep(delay)
                continue
            await self._close_listener()
            log.warning("PostgreSQL broker: LISTEN connection lost; reconnecting")

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
