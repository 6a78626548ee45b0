"""The precompiled SQLite path gives what SQLAlchemy gives, row for row and byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.contract.store_records import make_run, make_task
from treadle.errors import ServiceUnavailable
from treadle.store import sql
from treadle.store.records import RunRecord, TaskRecord
from treadle.store.sqlite import SqliteStore
from treadle.store.sqlite_fast import FastStatement, FastStatements


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, RunRecord, list[TaskRecord]]]:
    store = SqliteStore(f"sqlite:///{tmp_path / 'fast.db'}")
    await store.migrate()
    now = await store.now()
    run = make_run(now, output={"answer": [1, 2.5, None]}, deadline_at=now + timedelta(hours=1))
    tasks = [
        make_task(run.id, 0, now, status="completed", output={"id": 7}, finished_at=now),
        make_task(run.id, 1, now, status="failed", output=3, error="exit 3", settled=True),
        make_task(run.id, 2, now, status="queued", priority=4),
        make_task(run.id, 3, now, status="running", attempt_id="x.1", attempt_count=1),
        make_task(run.id, 4, now, status="completed", output=None, finished_at=now),
    ]
    await store.create_run(run, tasks)
    yield store, run, tasks
    await store.close()


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in result.all()]


async def test_every_repeated_select_reads_the_same_rows(
    seeded: tuple[SqliteStore, RunRecord, list[TaskRecord]],
) -> None:
    store, run, tasks = seeded
    cases: list[tuple[Any, dict[str, Any]]] = [
        (sql._GET_RUN, {"run_id": run.id}),
        (sql._GET_RUN_LIGHT, {"run_id": run.id}),
        (sql._TASK_STATES, {"run_id": run.id}),
        (sql._TASK_OUTPUTS, {"run_id": run.id}),
        (sql._GET_RUNS, {"ids": [run.id, "missing"]}),
        (sql._GET_RUNS_LIGHT, {"ids": [run.id]}),
        (sql._OPEN_ROWS_MANY, {"ids": [run.id, "missing"]}),
        (sql._GET_TASKS_MANY, {"ids": [run.id]}),
        (sql._GET_LAYERS_MANY, {"ids": [run.id]}),
        (sql._LOCK_VERSIONS, {"ids": [t.id for t in tasks[:3]]}),
    ]
    checked = 0
    for statement, params in cases:
        assert sql.REPEATED_STATEMENTS[id(statement)] is statement
        conn = store._connection()
        expected = conn.execute(statement, params)
        keys = list(expected.keys())
        expected_rows = _rows(expected)
        fast = FastStatement(statement, store.sync_engine.dialect)
        got = fast.execute(conn.connection.dbapi_connection, params)  # type: ignore[arg-type]
        assert _rows(got) == expected_rows, statement
        for row, want in zip(got.all(), expected_rows, strict=True):
            assert row._mapping == dict(zip(keys, want, strict=True))
        checked += len(expected_rows)
        conn.rollback()
    assert checked > 10  # the cases did read rows


async def test_a_compare_and_set_stores_the_same_bytes(
    seeded: tuple[SqliteStore, RunRecord, list[TaskRecord]],
) -> None:
    store, _, tasks = seeded
    now = await store.now()
    values = {"output": None, "finished_at": now, "status": "completed", "rendered": {"a": [1]}}
    statement = sql._task_cas(tuple(sorted(values)))
    params = {f"v_{k}": v for k, v in values.items()}
    conn = store._connection()
    first, second = tasks[2], tasks[3]
    with conn.begin():
        done = conn.execute(statement, {**params, "w_id": first.id, "w_version": 1})
        fast = FastStatements(store.sync_engine.dialect, sql.REPEATED_STATEMENTS).get(statement)
        assert fast is not None
        db: Any = conn.connection.dbapi_connection
        same = fast.execute(db, [{**params, "w_id": second.id, "w_version": 1}])
        stale = fast.execute(db, {**params, "w_id": first.id, "w_version": 1})
    assert (done.rowcount, same.rowcount, stale.rowcount) == (1, 1, 0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    columns = "status, output, rendered, finished_at, version"
    stored = [
        raw.execute(f"SELECT {columns} FROM treadle_tasks WHERE id = ?", (task.id,)).fetchone()
        for task in (first, second)
    ]
    # JSON null is stored as the text 'null', as SQLAlchemy's JSON type stores None
    assert stored[0] == stored[1] and stored[0][1] == "null"


def test_only_repeated_statements_are_precompiled() -> None:
    store = SqliteStore("sqlite:///:memory:")
    fast = FastStatements(store.sync_engine.dialect, sql.REPEATED_STATEMENTS)
    assert fast.get(sql._GET_RUN) is fast.get(sql._GET_RUN) is not None
    assert fast.get(sql._CLAIM) is None


async def test_a_failing_precompiled_statement_reads_as_an_unavailable_store(
    seeded: tuple[SqliteStore, RunRecord, list[TaskRecord]],
) -> None:
    store, run, _ = seeded
    raw = store._connection().connection.dbapi_connection
    assert raw is not None
    raw.execute("DROP TABLE treadle_layers")  # a fault SQLite reports from the statement itself
    with pytest.raises(ServiceUnavailable, match="no such table"):
        await store.get_layers(run.id)
    with pytest.raises(ServiceUnavailable, match="no such table"):
        await store.load_run_deltas([(run.id, True)])
