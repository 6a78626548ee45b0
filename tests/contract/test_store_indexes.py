"""The SQL stores' task indexes: what the migrations build, and which of them the hot reads use.

A claim, the dispatch sweep and the queue depths must each have exactly one index that can
answer them, so a planner without statistics (a new store, before its first ANALYZE) cannot
pick a worse one: with two candidates PostgreSQL once read and sorted every queued task of a
queue on each claim.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql

from tests.contract.store_services import drop_postgres, open_postgres
from treadle.store import schema
from treadle.store.pg_hot import CLAIM_NEXT
from treadle.store.postgres import PostgresStore
from treadle.store.sql import DUE_TASKS_LATERAL, QUEUES_WITH_QUEUED
from treadle.store.sqlite import SqliteStore

QUEUED = 3_000


def _index_names(connection: Any) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("treadle_tasks")}


async def _migrated_index_names(store: PostgresStore) -> set[str]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(_index_names)


async def test_sqlite_migrations_build_the_declared_task_indexes(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'treadle.db'}")
    try:
        await store.migrate()
        declared = {index.name for index in schema.tasks.indexes}
        with store.sync_engine.connect() as conn:
            assert _index_names(conn) == declared
    finally:
        await store.close()


async def _explain(conn: Any, statement: str) -> str:
    rows = (await conn.exec_driver_sql(f"EXPLAIN {statement}")).all()
    return "\n".join(row[0] for row in rows)


def _with_values(statement: Any, **values: Any) -> str:
    """A Core statement as PostgreSQL SQL with ``values`` written in for its parameters."""
    bound = statement.params(**values)
    return str(bound.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def test_postgres_hot_reads_use_their_one_index() -> None:
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        declared = {index.name for index in schema.tasks.indexes}
        assert await _migrated_index_names(store) == declared
        async with store.engine.begin() as conn:
            # Never analyzed, as a new store is: the planner has no statistics to go by.
            await conn.exec_driver_sql(
                "INSERT INTO treadle_tasks (id, run_id, name, seq, status, spec, depends_on,"
                " queue, priority, attempt_count, created_at, queued_at, available_at, version,"
                " settled) SELECT 't' || g, 'r', 'n' || g, g, CASE WHEN g % 10 = 0 THEN"
                " 'running' ELSE 'queued' END, '{}', '[]', 'q' || (g % 3), 0, 0, now(), now(),"
                f" now(), 1, false FROM generate_series(1, {QUEUED}) AS g"
            )
        async with store.engine.connect() as conn:
            # The plan a pooled connection keeps after its first executions.
            await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            await conn.exec_driver_sql(
                "PREPARE claim(text, timestamptz, int, timestamptz, text, timestamptz) AS "
                + CLAIM_NEXT
            )
            claim = await _explain(conn, "EXECUTE claim('q1', now(), 8, now(), 'w', now())")
            queues = await _explain(conn, _with_values(QUEUES_WITH_QUEUED))
            now = datetime.now(UTC)
            due = _with_values(DUE_TASKS_LATERAL, now=now, redeliver_before=now, limit=5)
            sweep = await _explain(conn, due)
            await conn.rollback()
        chosen = claim.split("CTE claimed")[0]
        assert "Index Scan using ix_treadle_tasks_ready" in chosen, claim
        assert "Sort" not in chosen.split("CTE chosen")[1], claim
        # Each step of the walk over queues is one index probe, not an aggregate of the index.
        assert "Aggregate" not in queues and "Limit" in queues, queues
        # The sweep reads each queue's due tasks through the same index, in its order.
        assert "ix_treadle_tasks_ready" in sweep and "Aggregate" not in sweep, sweep
        assert "Seq Scan" not in sweep, sweep
        depths = await store.queue_depths()
        assert sum(d["queued"] for d in depths.values()) == QUEUED - QUEUED // 10
        assert sum(d["running"] for d in depths.values()) == QUEUED // 10
        now = await store.now()
        # Queue by queue, then the best of all: seq 1 (q1), 2 (q2), 3 (q0), ...
        assert [t.seq for t in await store.due_tasks(now, now, 5)] == [1, 2, 3, 4, 5]
    finally:
        await drop_postgres(store)
