"""kr_task_stat as a PostgreSQL view, and importing ms_task_definition from PostgreSQL.

Real PostgreSQL at 127.0.0.1:5432; every test works in its own schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import ROOT, start_server
from tests.services import service_down
from treadle.compat.flower.cli import read_csv
from treadle.compat.flower.pgviews import create_flower_views
from treadle.compat.flower.translate import to_native
from treadle.compat.flower.views import COLUMNS, flow_rows
from treadle.engine.service import EngineService
from treadle.model.parse import definition_from_document
from treadle.store import schema as tables
from treadle.store.postgres import PostgresStore
from treadle.store.records import RunRecord, TaskChange

PG = "postgresql://postgres@127.0.0.1:5432/test"
EXAMPLE_CSV = Path(__file__).parent / "examples" / "ms_task_definition.csv"

FLOWER_DDL = """
CREATE TABLE {schema}.ms_task_definition (
  task_id varchar(256) NOT NULL, task_seq numeric NOT NULL, program varchar(256) NOT NULL,
  task_priority numeric DEFAULT 0 NOT NULL CHECK (-20 <= task_priority AND task_priority < 20),
  param1_key varchar(1024), param1_value varchar(1024), param2_key varchar(1024),
  param2_value varchar(1024), param3_key varchar(1024), param3_value varchar(1024),
  param4_key varchar(1024), param4_value varchar(1024), param5_key varchar(1024),
  param5_value varchar(1024), PRIMARY KEY (task_id, task_seq))
"""


async def _connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        service_down("PostgreSQL", exc)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    name = f"flower_{uuid.uuid4().hex[:12]}"
    conn = await _connect()
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()


@pytest.fixture
async def engine(pg_schema: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(
        PG.replace("postgresql://", "postgresql+asyncpg://"),
        connect_args={"server_settings": {"search_path": pg_schema}},
    )
    async with eng.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def store(engine: AsyncEngine, pg_schema: str) -> AsyncIterator[PostgresStore]:
    """The store on the tables ``engine`` made (same schema)."""
    pg_store = PostgresStore(PG + ("&" if "?" in PG else "?") + f"schema={pg_schema}")
    try:
        yield pg_store
    finally:
        await pg_store.close()


async def _view_rows(engine: AsyncEngine, flow_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM kr_task_stat WHERE task_flow_id = :id ORDER BY task_exec_seq"),
            {"id": flow_id},
        )
        return [dict(r._mapping) for r in result]


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """View rows have numerics and datetimes; the HTTP rows have JSON numbers and ISO text."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif key in (
            "task_exec_seq",
            "depends_task_exec_seq",
            "task_seq",
            "exec_status",
            "task_priority",
        ):
            value = int(value)
        out[key] = value
    return out


async def test_kr_task_stat_view_matches_flower_columns_and_codes(
    engine: AsyncEngine, store: PostgresStore
) -> None:
    model = definition_from_document(to_native(read_csv(EXAMPLE_CSV)))
    document = model.to_document()
    document.setdefault("version", 1)
    now = await store.now()
    run = RunRecord(str(uuid.uuid4()), "example", 1, document, "running", {}, now, dialect="flower")
    tasks = EngineService.build_tasks(run.id, model, document, now)
    await store.create_run(run, tasks)
    async with engine.begin() as conn:
        await create_flower_views(conn)

    rows = await _view_rows(engine, run.id)
    assert list(rows[0]) == list(COLUMNS)
    assert [(int(r["task_exec_seq"]), int(r["depends_task_exec_seq"])) for r in rows] == [
        (1, -1),
        (2, 1),
        (3, 2),
    ]
    assert [r["parameters"] for r in rows] == [
        {},
        {"SLEEP_TIME_SECOND": "3"},
        {"URL": "https://postman-echo.com/post", "BODY": '{"id": "test"}'},
    ]
    assert {r["task_id"] for r in rows} == {"example"}
    assert [int(r["exec_status"]) for r in rows] == [0, 0, 0]
    assert {int(r["task_priority"]) for r in rows} == {10}

    # Task 1 finishes, task 2 fails (its program raised): 3, 2 and task 3 stays waiting.
    current = await store.get_tasks(run.id)
    done_at = now + timedelta(seconds=2)
    await store.update_tasks(
        [
            TaskChange(
                current[0].id,
                current[0].version,
                {"status": "completed", "started_at": now, "finished_at": done_at},
            ),
            TaskChange(
                current[1].id,
                current[1].version,
                {"status": "failed", "started_at": done_at, "finished_at": done_at},
            ),
            TaskChange(current[2].id, current[2].version, {"status": "cancelled"}),
        ]
    )
    updated = await store.update_run(run.id, run.version, {"status": "failed"})
    assert updated is not None
    rows = await _view_rows(engine, run.id)
    assert [int(r["exec_status"]) for r in rows] == [3, 2, 0]
    assert rows[0]["finished_ts"] is not None and rows[0]["suspended_ts"] is None
    assert rows[1]["suspended_ts"] is not None and rows[1]["finished_ts"] is None
    # The HTTP rows (GET /flower/flows/{id}) say the same.
    http_rows = flow_rows(updated, await store.get_tasks(run.id))
    assert [_comparable(r) for r in rows] == http_rows

    # A cancelled run: what never ran is ignored (9).
    again = await store.update_run(run.id, updated.version, {"status": "cancelled"})
    assert again is not None
    rows = await _view_rows(engine, run.id)
    assert [int(r["exec_status"]) for r in rows] == [3, 2, 9]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


async def test_import_from_postgres_table(pg_schema: str, server: Any) -> None:
    conn = await _connect()
    try:
        await conn.execute(FLOWER_DDL.format(schema=pg_schema))
        await conn.executemany(
            f"INSERT INTO {pg_schema}.ms_task_definition (task_id, task_seq, program, "
            "task_priority, param1_key, param1_value, param2_key, param2_value) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                ("example", 1, "EchoRandomTimeSleep", 10, None, None, None, None),
                ("example", 2, "EchoParamTimeSleep", 10, "SLEEP_TIME_SECOND", "3", None, None),
                (
                    "example",
                    3,
                    "HTTPPostRequest",
                    10,
                    "URL",
                    "https://postman-echo.com/post",
                    "BODY",
                    '{"id": "test"}',
                ),
                ("other", 1, "EchoParamTimeSleep", 0, "SLEEP_TIME_SECOND", "0", None, None),
            ],
        )
    finally:
        await conn.close()
    table = f"{pg_schema}.ms_task_definition"
    done = _cli("import", "--from", PG, "--table", table, "--server", server.url)
    assert done.returncode == 0, done.stderr
    assert "example: imported as example v1 (3 tasks)" in done.stdout
    with server.client() as client:
        example = client.get("/api/v1/definitions/example").json()
        assert example["dialect"] == "flower"
        assert [t["handler"] for t in example["document"]["tasks"]] == [
            "EchoRandomTimeSleep",
            "EchoParamTimeSleep",
            "HTTPPostRequest",
        ]
        assert client.get("/api/v1/definitions/other").status_code == 200
    missing = _cli("import", "--from", PG, "--table", f"{pg_schema}.nope", "--server", server.url)
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr and "nope" in missing.stderr
    bad_table = _cli("import", "--from", PG, "--table", "x; drop", "--server", server.url)
    assert bad_table.returncode == 1
    assert "is not a table name" in bad_table.stderr
    assert "Traceback" not in missing.stderr + bad_table.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "treadle.compat.flower.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_server_on_postgres_creates_the_view(pg_schema: str, tmp_path: Path) -> None:
    db = f"{PG}?schema={pg_schema}"
    srv = start_server(tmp_path, "--db", db)
    try:
        with srv.client() as client:
            rows = [
                {
                    "task_id": "pgflow",
                    "task_seq": 1,
                    "program": "EchoParamTimeSleep",
                    "task_priority": 4,
                    "param1_key": "SLEEP_TIME_SECOND",
                    "param1_value": "0",
                },
            ]
            assert client.post("/api/v1/definitions", json=rows).status_code == 201
            flow_id = client.post("/register/pgflow").json()["taskFlowId"]
            srv.wait_run(flow_id)
    finally:
        srv.stop()

    async def read() -> list[asyncpg.Record]:
        conn = await _connect()
        try:
            return list(
                await conn.fetch(
                    f"SELECT task_id, exec_status, task_priority, parameters "
                    f"FROM {pg_schema}.kr_task_stat WHERE task_flow_id = $1",
                    flow_id,
                )
            )
        finally:
            await conn.close()

    import asyncio

    (row,) = asyncio.run(read())
    assert (row["task_id"], int(row["exec_status"]), int(row["task_priority"])) == ("pgflow", 3, 4)
    assert json.loads(row["parameters"]) == {"SLEEP_TIME_SECOND": "0"}
