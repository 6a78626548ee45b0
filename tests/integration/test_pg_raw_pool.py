"""The hot statements' connection pool (``store/pg_raw.py``) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tests.contract.store_services import POSTGRES_URL
from tests.services import service_down
from treadle.store import pg_raw
from treadle.store.pg_raw import RawPool


@pytest.fixture
async def pool() -> AsyncIterator[RawPool]:
    try:
        conn = await asyncpg.connect(POSTGRES_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        service_down("PostgreSQL", exc)
    await conn.close()
    raw = RawPool({"dsn": POSTGRES_URL}, max_size=2)
    yield raw
    await raw.close()


async def _backend(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_a_connection_given_back_is_the_next_one_handed_out(pool: RawPool) -> None:
    async with pool.connection() as conn:
        first = await _backend(conn)
    async with pool.connection() as conn:
        assert await _backend(conn) == first
        # JSON comes back decoded, as from the SQLAlchemy engine's connections.
        assert await conn.fetchval("SELECT '{\"a\": [1, 2]}'::json") == {"a": [1, 2]}


async def test_a_connection_the_server_ended_is_never_handed_out(pool: RawPool) -> None:
    async with pool.connection() as conn:
        first = await _backend(conn)
    killer = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await killer.close()
    await asyncio.sleep(0.2)  # the client sees the socket close
    async with pool.connection() as conn:
        assert await _backend(conn) != first
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_connection_left_in_a_transaction_is_closed_not_reused(pool: RawPool) -> None:
    async with pool.connection() as conn:
        first = await _backend(conn)
        await conn.execute("BEGIN")
        left = conn
    assert left.is_in_transaction()
    async with pool.connection() as conn:
        assert await _backend(conn) != first
        assert not conn.is_in_transaction()
    await asyncio.sleep(0.2)
    assert left.is_closed()


async def test_no_more_than_max_size_connections_at_once(pool: RawPool) -> None:
    inside = 0
    most = 0

    async def hold() -> None:
        nonlocal inside, most
        async with pool.connection() as conn:
            inside += 1
            most = max(most, inside)
            await conn.execute("SELECT pg_sleep(0.05)")
            inside -= 1

    await asyncio.gather(*(hold() for _ in range(6)))
    assert most == 2


async def test_idle_connections_are_closed_after_a_while(
    pool: RawPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_raw, "IDLE_SECONDS", 0.2)
    async with pool.connection() as conn:
        kept = conn
    assert not kept.is_closed()
    await asyncio.sleep(0.6)
    assert kept.is_closed()
    async with pool.connection() as conn:  # a new one is made on demand
        assert await conn.fetchval("SELECT 1") == 1


async def test_close_ends_idle_and_busy_connections(pool: RawPool) -> None:
    async with pool.connection() as idle:
        pass
    entered = asyncio.Event()

    async def busy() -> None:
        async with pool.connection() as conn:
            entered.set()
            await conn.execute("SELECT pg_sleep(30)")

    holder = asyncio.create_task(busy())
    await entered.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pool.close()
    assert loop.time() - started < 8
    assert idle.is_closed()
    with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, OSError)):
        await holder


async def test_a_new_stores_hot_statements_are_planned_through_indexes() -> None:
    """The hot statements' plans are made once per connection (generic plans): made while a
    new store holds a few hundred rows, they must not scan whole tables, which later hold
    millions (PostgreSQL chose a sequential scan to mark tasks settled by id)."""
    from tests.contract.store_records import seed
    from tests.contract.store_services import drop_postgres, open_postgres
    from treadle.store import pg_hot, pg_pass

    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        for _ in range(10):
            await seed(store, 20, status="pending")
        async with store._raw() as conn:
            plans = [
                "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {statement}", *args))
                for statement, args in (
                    (pg_pass.MARK_SETTLED, [["a", "b"]]),
                    (pg_pass.GET_RUNS_LIGHT, [["a"]]),
                    (pg_pass.OPEN_ROWS, [["a"]]),
                    (pg_pass.GET_TASKS, [["a"]]),
                    (pg_hot.FINISH_ATTEMPTS, _finish_args()),
                )
            ]
        for plan in plans:
            assert "Seq Scan" not in plan, plan
    finally:
        await drop_postgres(store)


def _finish_args() -> list[Any]:
    from datetime import datetime

    from treadle.store import pg_hot
    from treadle.store.records import AttemptOutcome

    outcome = AttemptOutcome("a.1", "a", "completed", "completed", None)
    return list(pg_hot.finish_args([outcome], datetime.now(UTC), lambda v: "null"))


async def test_no_statement_of_the_store_is_jit_compiled() -> None:
    """PostgreSQL compiles a statement whose estimated cost passes ``jit_above_cost``; for the
    store's short statements that took longer than running them (0.6 s against 1 ms)."""
    from tests.contract.store_services import drop_postgres, open_postgres
    from treadle.store import pg_pass

    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        async with store._raw() as conn:
            await conn.execute("SET jit_above_cost = 0")
            rows = await conn.fetch(f"EXPLAIN (ANALYZE) {pg_pass.OPEN_ROWS_WITH_RUNS}", ["a"])
        assert not any(row[0].startswith("JIT:") for row in rows)
        async with store._tx() as general:
            assert (await general.execute(text("SHOW jit"))).scalar_one() == "off"
    finally:
        await drop_postgres(store)
