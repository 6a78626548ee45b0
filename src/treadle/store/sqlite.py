"""The embedded default store: one SQLite file in WAL mode.

Statements run inline on the event loop through SQLAlchemy's synchronous pysqlite driver rather
than through aiosqlite's thread: a WAL commit with ``synchronous=NORMAL`` takes tens of
microseconds, far less than the two thread hand-offs per statement that aiosqlite needs, and
the embedded mode has a single writer anyway. (Measured: about 2.5 ms per transaction through
aiosqlite + SQLAlchemy async, under 0.3 ms inline; see benchmarks/README.md.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from treadle.errors import ServiceUnavailable
from treadle.store import sqlite_hot
from treadle.store.claims import claimed_pairs
from treadle.store.immutable_cache import ImmutableColumns
from treadle.store.records import AttemptOutcome, AttemptRecord, TaskRecord
from treadle.store.sql import REPEATED_STATEMENTS, SqlStore
from treadle.store.sqlite_fast import FastStatements


def json_dumps(value: Any) -> str:
    """orjson, several times faster than json for the JSON columns; str keys not required."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    # A JSON column holding a bare number (a handler returning 7) has NUMERIC affinity in
    # SQLite, so the driver hands back an int or float, not text.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is replaced by explicit BEGIN IMMEDIATE below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    # Take the write lock at the start so another process cannot slip in between our
    # read and our conditional write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_path(url: str) -> str:
    """Path of a ``sqlite:///path`` URL (``:memory:`` allowed)."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite+pysqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            return url[len(prefix) :] or ":memory:"
    return url


class _InlineConnection:
    """The slice of AsyncConnection that SqlStore uses, over a synchronous connection.

    Repeated statements run precompiled on the driver connection (``sqlite_fast``), inside
    the same transaction; the others through SQLAlchemy.
    """

    def __init__(self, conn: Connection, fast: FastStatements) -> None:
        self._conn = conn
        self._fast = fast

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if parameters is not None:
            fast = self._fast.get(statement)
            if fast is not None:
                db: Any = self._conn.connection.dbapi_connection
                return fast.execute(db, parameters)
            return self._conn.execute(statement, parameters)
        return self._conn.execute(statement)


class SqliteStore(SqlStore):
    """SQLite, one connection, statements inline (see the module docstring)."""

    def __init__(self, url: str) -> None:
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        engine = create_engine(
            f"sqlite+pysqlite:///{path}",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=json_dumps,
            json_deserializer=_json_loads,
        )
        event.listen(engine, "connect", _pragmas)
        event.listen(engine, "begin", _begin_immediate)
        self.sync_engine = engine
        self._fast = FastStatements(engine.dialect, REPEATED_STATEMENTS)
        self.engine = None  # type: ignore[assignment]
        self.url = f"sqlite:///{path}"
        self._immutable = ImmutableColumns()
        # One shared connection, kept open: transactions from concurrent coroutines take turns.
        self._lock = asyncio.Lock()
        self._conn: Connection | None = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._lock:
            try:
                conn = self._connection()
                with conn.begin():
                    yield _InlineConnection(conn, self._fast)
            except (IntegrityError, sqlite3.IntegrityError):
                raise
            except (OperationalError, DBAPIError) as exc:
                raise ServiceUnavailable(f"store error: {exc.orig!r}") from exc
            except sqlite3.Error as exc:  # from a precompiled statement (sqlite_fast)
                raise ServiceUnavailable(f"store error: {exc!r}") from exc

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.sync_engine.connect()
        return self._conn

    @asynccontextmanager
    async def _raw_tx(self) -> AsyncIterator[sqlite3.Connection]:
        """A write transaction on the sqlite3 connection itself (see ``sqlite_hot``)."""
        async with self._lock:
            db: Any = self._connection().connection.dbapi_connection
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise ServiceUnavailable(f"store error: {exc!r}") from exc

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
        """One claim on the driver connection: a queue's best tasks, or given ids."""
        if limit <= 0:
            return []
        now = await self.now()
        lease = now + timedelta(seconds=lease_seconds)
        async with self._raw_tx() as db:
            tasks = sqlite_hot.claim_next(
                db, which, limit, self._due(now), now, worker_id, lease, _json_loads
            )
        return claimed_pairs(tasks, worker_id, now, lease)

    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[str]:
        if not outcomes:
            return []
        now = await self.now()
        async with self._raw_tx() as db:
            return sqlite_hot.finish_attempts(db, outcomes, now, json_dumps)

    async def finish_and_claim(
        self,
        outcomes: Sequence[AttemptOutcome],
        queue: str,
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[list[str], list[tuple[TaskRecord, AttemptRecord]]]:
        now = await self.now()
        lease = now + timedelta(seconds=lease_seconds)
        async with self._raw_tx() as db:
            accepted = sqlite_hot.finish_attempts(db, outcomes, now, json_dumps) if outcomes else []
            tasks = (
                sqlite_hot.claim_next(
                    db, queue, limit, self._due(now), now, worker_id, lease, _json_loads
                )
                if limit > 0
                else []
            )
        return accepted, claimed_pairs(tasks, worker_id, now, lease)

    async def migrate(self) -> None:
        from treadle.store.migrate import alembic_config

        async with self._lock:
            with self.sync_engine.begin() as conn:
                command.upgrade(alembic_config(conn), "head")

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.sync_engine.dispose()
