"""The distributed roles' command line: settings precedence, migrate, --automigrate, prune, and
one clear line with exit code 2 for a wrong URL or an unreachable service, for every role."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.integration.cluster import POSTGRES_URL, service_down, with_options

ROLES = ["api", "coordinator", "worker", "standalone", "migrate", "prune"]
PG_DOWN = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def treadle(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    full_env.update({"PYTHONPATH": str(ROOT / "src"), "COLUMNS": "60", **(env or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "treadle.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
    )


def role_args(role: str) -> list[str]:
    if role in ("api", "standalone"):
        return [role, "--port", str(free_port())]
    if role == "prune":
        return [role, "--older-than", "30d"]
    return [role]


# Each role meets one wrong scheme and one unreachable service (store or broker by turns).
CASES = [
    ("api", "bad-store-scheme"),
    ("api", "broker-down"),
    ("coordinator", "bad-broker-scheme"),
    ("coordinator", "store-down"),
    ("worker", "bad-store-scheme"),
    ("worker", "broker-down"),
    ("standalone", "bad-broker-scheme"),
    ("standalone", "store-down"),
    ("migrate", "bad-store-scheme"),
    ("migrate", "store-down"),
    ("prune", "bad-store-scheme"),
    ("prune", "store-down"),
]


def case_flags(kind: str, tmp: Path) -> tuple[list[str], str]:
    """(flags, what the one line must name)."""
    sqlite = f"sqlite:///{tmp / 'ok.db'}"
    if kind == "bad-store-scheme":
        return ["--db", "mongodb://127.0.0.1/x"], "unknown store URL scheme 'mongodb'"
    if kind == "store-down":
        return ["--db", PG_DOWN], "store postgresql://postgres@127.0.0.1:1/test unreachable"
    if kind == "bad-broker-scheme":
        return [
            "--db",
            sqlite,
            "--broker",
            "kafka://127.0.0.1",
        ], "unknown broker URL scheme 'kafka'"
    return (
        ["--db", sqlite, "--broker", "amqp://guest:guest@127.0.0.1:1/?connect_timeout=2"],
        "RabbitMQ broker at amqp://guest:***@127.0.0.1:1/",
    )


def test_every_role_reports_bad_urls_and_unreachable_services_in_one_line(
    tmp_path: Path,
) -> None:
    started = []
    for role, kind in CASES:
        flags, expected = case_flags(kind, tmp_path)
        started.append((role, kind, expected, treadle(*role_args(role), *flags, cwd=tmp_path)))
    assert {role for role, *_ in started} == set(ROLES)
    for role, kind, expected, proc in started:  # all ran side by side; now collect
        out, err = proc.communicate(timeout=90)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        where = f"{role} / {kind}: stderr was\n{err}"
        assert proc.returncode == 2, where
        assert len(lines) == 1 and expected in lines[0], where
        assert "Traceback" not in err and "Traceback" not in out, where


@pytest.mark.parametrize(
    ("file_db", "env_db", "flag_db", "winner"),
    [
        ("file.db", None, None, "file.db"),
        ("file.db", "env.db", None, "env.db"),
        ("file.db", "env.db", "flag.db", "flag.db"),
        (None, "env.db", "flag.db", "flag.db"),
    ],
)
def test_settings_precedence_flags_then_env_then_config_file(
    tmp_path: Path, file_db: str | None, env_db: str | None, flag_db: str | None, winner: str
) -> None:
    config = tmp_path / "treadle.yaml"
    config.write_text(f"db: sqlite:///{tmp_path / file_db}\n" if file_db else "log_level: info\n")
    env = {"TREADLE_DB": f"sqlite:///{tmp_path / env_db}"} if env_db else {}
    flags = ["--db", str(tmp_path / flag_db)] if flag_db else []
    proc = treadle("migrate", "--config", str(config), *flags, env=env, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"migrated sqlite:///{tmp_path / winner}" in err
    made = sorted(p.name for p in tmp_path.glob("*.db"))
    assert made == [winner]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    import asyncpg

    schema = f"ta_{uuid.uuid4().hex[:10]}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        asyncio.run(drop())
    except OSError as exc:
        service_down("PostgreSQL", exc)
    yield schema
    asyncio.run(drop())


async def _tables(schema: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


def test_migrate_creates_the_postgres_schema_and_is_repeatable(pg_schema: str) -> None:
    url = with_options(POSTGRES_URL, f"schema={pg_schema}")
    for _ in range(2):
        proc = treadle("migrate", "--db", url)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert f"migrated postgresql://postgres@127.0.0.1:5432/test?schema={pg_schema}" in err
    assert {
        "treadle_runs",
        "treadle_tasks",
        "treadle_attempts",
        "treadle_alembic_version",
    } <= asyncio.run(_tables(pg_schema))


@pytest.mark.parametrize("role", ["api", "coordinator", "worker", "standalone"])
def test_automigrate_on_every_role(pg_schema: str, role: str, tmp_path: Path) -> None:
    url = with_options(POSTGRES_URL, f"schema={pg_schema}")
    proc = treadle(*role_args(role), "--db", url, "--automigrate", cwd=tmp_path)
    try:
        deadline = asyncio.run(_wait_tables(pg_schema, proc))
        assert deadline, "no tables appeared"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err


async def _wait_tables(schema: str, proc: subprocess.Popen[str]) -> bool:
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"the role exited: {proc.communicate()[1]}")
        if "treadle_runs" in await _tables(schema):
            return True
        await asyncio.sleep(0.1)
    return False


def test_prune_deletes_old_finished_runs_with_their_logs_in_batches(pg_schema: str) -> None:
    from treadle.store.postgres import PostgresStore
    from treadle.store.records import NewLog, RunRecord, TaskRecord

    url = with_options(POSTGRES_URL, f"schema={pg_schema}")
    old = datetime.now(UTC) - timedelta(days=40)

    async def seed() -> None:
        store = PostgresStore(url)
        try:
            await _fill(store)
        finally:
            await store.close()

    async def _fill(store: PostgresStore) -> None:
        await store.migrate()
        for i in range(7):
            status = (
                ["completed", "failed", "cancelled", "running"][i % 4] if i < 6 else "completed"
            )
            run = RunRecord(
                id=f"run-{i}",
                definition_name="d",
                definition_version=1,
                definition={},
                status=status,
                inputs={},
                created_at=old,
            )
            task = TaskRecord(
                id=f"task-{i}",
                run_id=run.id,
                name="t",
                seq=0,
                status="completed",
                spec={},
                depends_on=[],
                queue="default",
                priority=0,
                created_at=old,
            )
            await store.create_run(run, [task])
            await store.append_logs([NewLog(run.id, task.id, None, "stdout", "hello\n")])
            finished = old if i != 6 else datetime.now(UTC)  # run-6 finished just now
            if status != "running":
                await store.update_run(run.id, run.version, {"finished_at": finished})

    asyncio.run(seed())
    proc = treadle("prune", "--older-than", "30d", "--db", url, "--batch", "2")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert out.strip() == "5"  # run-0, 1, 2, 4, 5: finished 40 days ago
    assert "pruned 5 runs finished before" in err and "pruning runs finished before" in err

    async def left() -> tuple[list[str], int]:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": pg_schema})
        try:
            runs = [r["id"] for r in await conn.fetch("SELECT id FROM treadle_runs ORDER BY id")]
            logs = await conn.fetchval("SELECT count(*) FROM treadle_logs")
            return runs, int(logs)
        finally:
            await conn.close()

    runs, logs = asyncio.run(left())
    assert runs == ["run-3", "run-6"]  # the running one and the one finished just now stay
    assert logs == 2


def test_prune_rejects_a_bad_age() -> None:
    proc = treadle("prune", "--older-than", "soon", "--db", "sqlite:///x.db")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "bad --older-than 'soon'" in err
