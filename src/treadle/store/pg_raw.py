"""The PostgreSQL store's pool for its hot statements: plain asyncpg connections.

The hot statements (claims, reports, a pass's read and write) used to borrow the asyncpg
connection under a SQLAlchemy pooled connection. Checking that out and back in costs about
0.2 ms of CPU on the development VM (greenlet switches, pool events, the adapter's bookkeeping),
more than the statement itself, and a worker's chain step makes four of them. asyncpg's own
pool still cost about 50 us of CPU per checkout (a proxy object per checkout, a task to shield
each release, a reset hook), against 85 us for a ``SELECT 1`` on a held connection; this pool
is a stack of idle connections behind a semaphore. What a pool must still do it does: a
connection the server closed is never handed out, and one given back inside a transaction
(its caller was cancelled mid-statement) is closed rather than reused; the hot statements set
no session state, so there is nothing else to reset.

Connections are made on demand (none at start) and closed after a while unused, so a process
that never runs a hot statement holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import orjson

#: Seconds an unused connection stays open.
IDLE_SECONDS = 60.0


async def _json_codecs(conn: Any) -> None:
    """Decode JSON as the SQLAlchemy engine's connections do (statements send JSON as text)."""
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + value.encode(),
        decoder=lambda data: orjson.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


class RawPool:
    """At most ``max_size`` asyncpg connections with the store's connection settings, made
    on demand, reused most-recent-first, closed after :data:`IDLE_SECONDS` unused."""

    def __init__(self, connect_kwargs: Mapping[str, Any], max_size: int) -> None:
        self._connect_kwargs = dict(connect_kwargs)
        self._slots = asyncio.Semaphore(max(1, max_size))
        # Idle connections with the loop time each was given back, the most recent last.
        self._idle: list[tuple[Any, float]] = []
        self._busy: set[Any] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def _open(self) -> Any:
        conn = await asyncpg.connect(**self._connect_kwargs)
        try:
            await _json_codecs(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _take_idle(self) -> Any | None:
        while self._idle:
            conn, _ = self._idle.pop()
            if not conn.is_closed():
                return conn
        return None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection for the duration of the block (autocommit)."""
        async with self._slots:
            conn = self._take_idle() or await self._open()
            self._busy.add(conn)
            try:
                yield conn
            finally:
                self._busy.discard(conn)
                self._give_back(conn)

    def _give_back(self, conn: Any) -> None:
        if conn.is_closed():
            return
        if self._closed or conn.is_in_transaction():
            # Closing: nobody should take it. In a transaction: its caller was interrupted
            # mid-statement, and a rollback would cost a round trip on somebody's call.
            self._close_soon(conn)
            return
        loop = asyncio.get_running_loop()
        self._idle.append((conn, loop.time()))
        if self._expiry is None:
            self._expiry = loop.call_later(IDLE_SECONDS, self._expire)

    def _expire(self) -> None:
        """Close the connections unused for IDLE_SECONDS; look again while any are idle."""
        self._expiry = None
        loop = asyncio.get_running_loop()
        horizon = loop.time() - IDLE_SECONDS
        while self._idle and self._idle[0][1] <= horizon:
            conn, _ = self._idle.pop(0)
            self._close_soon(conn)
        if self._idle:
            wait = self._idle[0][1] - horizon
            self._expiry = loop.call_later(wait, self._expire)

    def _close_soon(self, conn: Any) -> None:
        async def close() -> None:
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:  # a broken connection or a timeout: just drop the socket
                conn.terminate()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection; those still in use are terminated after a short wait."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            self._close_soon(conn)
        deadline = asyncio.get_running_loop().time() + 5
        while self._busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self._busy):
            conn.terminate()
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=6)
        self._closed = False  # a store may be used again after close, as SQLAlchemy's pool may
