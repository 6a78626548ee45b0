"""The PostgreSQL store's pool for its hot statements: plain asyncpg connections.

The hot statements (claims, reports, a pass's read and write) used to borrow the asyncpg
connection under a SQLAlchemy pooled connection. Checking that out and back in costs about
0.2 ms of CPU on the development VM (greenlet switches, pool events, the adapter's bookkeeping),
more than the statement itself, and a worker's chain step makes four of them. asyncpg's own
pool costs a third of that. Its reset on release (a ``RESET ALL`` round trip by default) is
replaced by the part that matters here: asyncpg still rolls back a transaction left open;
the hot statements set no session state, so there is nothing else to reset.

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


async def _nothing_to_reset(conn: Any) -> None:
    """The hot statements leave no session state behind (asyncpg ends open transactions)."""


class RawPool:
    """A lazily created asyncpg pool with the store's connection settings."""

    def __init__(self, connect_kwargs: Mapping[str, Any], max_size: int) -> None:
        self._connect_kwargs = dict(connect_kwargs)
        self._max_size = max(1, max_size)
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=0,
                        max_size=self._max_size,
                        max_inactive_connection_lifetime=IDLE_SECONDS,
                        init=_json_codecs,
                        reset=_nothing_to_reset,
                        **self._connect_kwargs,
                    )
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection for the duration of the block (autocommit)."""
        pool = await self._get()
        async with pool.acquire() as conn:
            yield conn

    async def close(self) -> None:
        """Close every connection; those still in use are terminated after a short wait."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except Exception:  # a timeout or a broken connection: end them all now
            pool.terminate()
