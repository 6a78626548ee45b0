"""Store selection by URL, and what only one backend has to show (schemas, key prefixes)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tests.contract.store_records import make_run, make_task, seed
from tests.contract.store_services import (
    POSTGRES_URL,
    REDIS_URL,
    drop_postgres,
    drop_redis,
    open_postgres,
    open_redis,
    with_option,
)
from treadle.errors import ConfigError, NotFound, ServiceUnavailable
from treadle.store.base import Store
from treadle.store.delta import RunDelta
from treadle.store.factory import connect_store, open_store
from treadle.store.migrate import head_revision
from treadle.store.postgres import PostgresStore, parse_postgres_url
from treadle.store.records import (
    AttemptOutcome,
    DecisionWrite,
    LayerRecord,
    NewLog,
    RunRecord,
    TaskChange,
    TaskRecord,
)
from treadle.store.redis import RedisStore
from treadle.store.sql import SqlStore, new_id
from treadle.store.sqlite import SqliteStore


# -- the factory --------------------------------------------------------------------------
async def test_open_store_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    cases = [
        (f"sqlite:///{tmp_path / 'a.db'}", SqliteStore),
        (str(tmp_path / "b.db"), SqliteStore),
        ("postgresql://postgres@127.0.0.1:5432/test", PostgresStore),
        ("postgres://postgres@127.0.0.1:5432/test?schema=s1", PostgresStore),
        ("postgresql+asyncpg://postgres@127.0.0.1/test", PostgresStore),
        ("redis://127.0.0.1:6379/0?prefix=x:", RedisStore),
    ]
    for url, kind in cases:
        store = open_store(url)
        assert type(store) is kind, url
        assert isinstance(store, Store)
        await store.close()


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        open_store("mysql://root@localhost/treadle")
    message = str(caught.value)
    assert "'mysql'" in message
    for accepted in ("sqlite", "postgresql", "redis"):
        assert accepted in message
    with pytest.raises(ConfigError, match="empty"):
        open_store("  ")


def test_bad_postgres_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="schema"):
        open_store("postgresql://postgres@127.0.0.1/test?schema=a;drop")
    with pytest.raises(ConfigError, match="pool_size"):
        open_store("postgresql://postgres@127.0.0.1/test?pool_size=many")
    settings = parse_postgres_url("postgres://u:secret@h:6543/db?search_path=s2&pool_size=3")
    assert (settings.schema, settings.pool_size) == ("s2", 3)
    assert "secret" not in settings.public_url
    assert settings.driver_url.drivername == "postgresql+asyncpg"
    assert "search_path" not in settings.driver_url.query


def test_session_options_are_read_from_the_postgres_url() -> None:
    plain = parse_postgres_url("postgresql://postgres@127.0.0.1/test")
    assert (plain.application_name, plain.idle_in_transaction_timeout) == ("treadle", 10)
    named = parse_postgres_url(
        "postgresql://postgres@127.0.0.1/test?application_name=ops&idle_in_transaction_timeout=0"
    )
    assert (named.application_name, named.idle_in_transaction_timeout) == ("ops", 0)
    assert "application_name" not in named.driver_url.query
    with pytest.raises(ConfigError, match="idle_in_transaction_timeout"):
        parse_postgres_url("postgresql://postgres@127.0.0.1/test?idle_in_transaction_timeout=x")


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/test", "redis://127.0.0.1:1/0?prefix=none:"],
)
async def test_unreachable_server_is_service_unavailable(url: str) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        await connect_store(url, migrate=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message or "127.0.0.1', 1" in message


async def test_connect_store_migrates(tmp_path: Path) -> None:
    store = await connect_store(f"sqlite:///{tmp_path / 'c.db'}", migrate=True)
    try:
        run, _ = await seed(store)
        assert (await store.get_run(run.id)).id == run.id
    finally:
        await store.close()


# -- two store instances on the same data --------------------------------------------------
async def test_claims_from_separate_store_instances_make_one_attempt(store: Store) -> None:
    run, tasks = await seed(store, 1)
    twins = [open_store(store.url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.claim([tasks[0].id], f"w{i}", 30) for i, s in enumerate([store, *twins] * 4))
        )
    finally:
        for twin in twins:
            await twin.close()
    assert sum(len(r) for r in results) == 1
    assert len(await store.get_attempts(run.id)) == 1


# -- PostgreSQL ---------------------------------------------------------------------------
async def test_postgres_migrations_stay_in_their_schema() -> None:
    schema = f"treadle_test_{uuid.uuid4().hex[:12]}"
    store = await open_postgres(schema)
    second = PostgresStore(with_option(POSTGRES_URL, f"search_path={schema}"))
    try:
        # two processes starting together: the advisory lock makes them take turns
        await asyncio.gather(store.migrate(), second.migrate())
        async with store.engine.begin() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": schema},
                )
            ).scalars()
            found = set(tables)
            version = (
                await conn.execute(text("SELECT version_num FROM treadle_alembic_version"))
            ).scalar_one()
        assert {
            "treadle_definitions",
            "treadle_runs",
            "treadle_tasks",
            "treadle_attempts",
            "treadle_logs",
            "treadle_events",
            "treadle_workers",
            "treadle_alembic_version",
        } <= found
        assert version == head_revision()
        run, _ = await seed(second)
        assert (await store.get_run(run.id)).id == run.id
        assert store.url.endswith(f"schema={schema}")
    finally:
        await second.close()
        await drop_postgres(store)


async def test_postgres_clock_is_the_servers() -> None:
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        async with store.engine.begin() as conn:
            server = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        assert abs(await store.now() - server) < timedelta(seconds=2)
    finally:
        await store.close()


async def test_postgres_claims_survive_connections_the_server_killed() -> None:
    """The raw claim path: a connection the server ended fails at most the call using it,
    with a one-line error, and the pool replaces it."""
    schema = f"treadle_test_{uuid.uuid4().hex[:12]}"
    # Its own application name: only this store's sessions are ended, not other tests'.
    store = await open_postgres(schema, f"application_name={schema}")
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await store.migrate()
        _, tasks = await seed(store, 3)
        assert len(await store.claim_next("default", 1, "w1", 30)) == 1
        # Ended while in use: that call fails, cleanly.
        with pytest.raises(ServiceUnavailable) as caught:
            async with store._raw() as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                await conn.fetchval("SELECT 1")
        assert "\n" not in str(caught.value) and "store " in str(caught.value)
        # Ended while idle in the pool: noticed on the way out, or failing one call.
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            schema,
        )
        assert ended >= 1
        failures = []
        claimed = []
        for _ in range(6):  # the pool may hold several dead connections
            try:
                claimed = await store.claim_next("default", 1, "w1", 30)
            except ServiceUnavailable as exc:
                failures.append(str(exc))
                continue
            break
        assert [t.id for t, _ in claimed] == [tasks[1].id]
        assert all("\n" not in message and "store " in message for message in failures)
        assert [t.id for t, _ in await store.claim_next("default", 1, "w1", 30)] == [tasks[2].id]
    finally:
        await admin.close()
        await drop_postgres(store)


# -- Redis --------------------------------------------------------------------------------
PREFIXES = ("due:", "prios", "redeliver", "leases", "unsettled", "runs", "queue:", "qprios:")


async def redis_index_sizes(store: RedisStore) -> dict[str, int]:
    sizes = {}
    async for key in store.client.scan_iter(match=store.prefix + "*", count=500):
        name = key[len(store.prefix) :]
        if name.startswith(PREFIXES):
            sizes[name] = await store.client.zcard(key)
    return {k: v for k, v in sizes.items() if v}


async def test_redis_indexes_drain_when_work_is_done() -> None:
    store = await open_redis(f"treadle-test-{uuid.uuid4().hex[:12]}:")
    try:
        await store.migrate()
        run, tasks = await seed(store, 3, priorities=[3, 1, 3])
        now = await store.now()
        sizes = await redis_index_sizes(store)
        assert sizes["due:3"] == 2 and sizes["due:1"] == 1 and sizes["prios"] == 2
        assert sizes['queue:"default":3'] == 2 and sizes['queue:"default":1'] == 1
        assert sizes['qprios:"default"'] == 2
        await store.mark_published([tasks[0].id], now)
        assert (await redis_index_sizes(store))["redeliver"] == 1
        claimed = await store.claim([t.id for t in tasks], "w1", 30)
        assert (await redis_index_sizes(store)).get("leases") == 3
        await store.finish_attempts(
            [AttemptOutcome(a.id, t.id, "completed", "completed") for t, a in claimed]
        )
        await store.append_logs([NewLog(run.id, tasks[0].id, None, "stdout", "x")])
        assert (await redis_index_sizes(store)).get("unsettled") == 1
        await store.update_tasks(
            [TaskChange(t.id, t.version + 1, {"settled": True}) for t, _ in claimed]
        )
        await store.update_run(run.id, 1, {"status": "completed", "finished_at": now})
        sizes = await redis_index_sizes(store)
        assert set(sizes) == {"runs", 'runs:s:"completed"', 'runs:d:"demo"', "runs:fin"}

        assert await store.prune_runs(now + timedelta(seconds=1)) == 1
        assert await redis_index_sizes(store) == {}
        leftovers = [k async for k in store.client.scan_iter(match=store.prefix + "*")]
        assert sorted(k[len(store.prefix) :] for k in leftovers) == ["schema", "seq:log"]
    finally:
        await drop_redis(store)


async def test_redis_prefixes_isolate_installations() -> None:
    first = await open_redis(f"treadle-test-{uuid.uuid4().hex[:12]}:")
    second = await open_redis(f"treadle-test-{uuid.uuid4().hex[:12]}:")
    try:
        run = make_run(await first.now())
        await first.create_run(run, [])
        await second.create_run(run, [])  # same id, other installation: no clash
        assert await first.count_runs() == 1 and await second.count_runs() == 1
        await first.update_run(run.id, 1, {"status": "failed"})
        assert (await second.get_run(run.id)).status == "running"
    finally:
        await drop_redis(first)
        await drop_redis(second)


async def test_redis_refuses_a_newer_layout() -> None:
    store = await open_redis(f"treadle-test-{uuid.uuid4().hex[:12]}:")
    try:
        await store.client.set(store.prefix + "schema", 99)
        with pytest.raises(ConfigError, match="newer"):
            await store.migrate()
    finally:
        await drop_redis(store)


def test_redis_url_options() -> None:
    store = RedisStore("redis://:hunter2@127.0.0.1:6379/2?prefix=app1:")
    assert store.prefix == "app1:"
    assert "hunter2" not in store.url
    assert RedisStore("redis://127.0.0.1:6379").prefix == "treadle:"
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore("redis://127.0.0.1:6379/0?prefix=")
    assert REDIS_URL.startswith("redis")


async def test_postgres_pass_read_equals_the_generic_one() -> None:
    """The raw per-pass read (store/pg_pass.py) returns what SqlStore's generic read does."""
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        now = await store.now()
        run_a, tasks_a = await seed(store, 4, status="pending")
        layered = make_run(now)
        layers = [
            LayerRecord(new_id(), layered.id, "late", 10, "pending", now, paused=True),
            LayerRecord(new_id(), layered.id, "early", 0, "running", now, started_at=now),
        ]
        await store.create_run(layered, [], layers)
        await store.update_tasks(
            [
                TaskChange(tasks_a[0].id, 1, {"status": "completed", "output": {"x": [1, "y"]}}),
                TaskChange(tasks_a[1].id, 1, {"status": "failed", "error": "e", "output": None}),
                TaskChange(tasks_a[2].id, 1, {"status": "queued"}),
            ]
        )
        requests = [
            (layered.id, True),
            ("no-such-run", True),
            (run_a.id, False),
            (run_a.id, True),
        ]
        for _ in range(2):  # first with every run's full row, then with the cached columns
            raw = await store.load_run_deltas(requests)
            generic = await SqlStore.load_run_deltas(store, requests)
            assert [str(r) if isinstance(r, NotFound) else r for r in raw] == [
                str(r) if isinstance(r, NotFound) else r for r in generic
            ]
        delta = raw[2]
        assert isinstance(delta, RunDelta)
        assert sorted(row["id"] for row in delta.rows) == sorted(t.id for t in tasks_a[:2])
        assert (delta.task_count, delta.version_sum) == (4, 5)
        assert [layer.name for layer in raw[0].layers] == ["early", "late"]  # type: ignore[union-attr]
    finally:
        await drop_postgres(store)


async def test_postgres_pass_write_stores_what_the_generic_one_does() -> None:
    """The raw per-pass write: the same decision through it and through SqlStore's generic
    write leaves equal rows, events and results (JSON, JSON null, naive and aware times)."""
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        now = await store.now()
        naive = now.replace(tzinfo=None) - timedelta(seconds=5)

        def decision(run: RunRecord, tasks: list[TaskRecord], stale: TaskRecord) -> DecisionWrite:
            first, second, third, done = tasks
            return DecisionWrite(
                [
                    TaskChange(
                        first.id,
                        1,
                        {"status": "queued", "rendered": {"argv": ["echo", "ä"]}, "queued_at": now},
                    ),
                    TaskChange(
                        second.id,
                        1,
                        {"status": "failed", "output": None, "error": "x", "rendered": None},
                    ),
                    TaskChange(third.id, 9, {"status": "queued"}),  # stale: loses
                    TaskChange(stale.id, 1, {"status": "skipped", "finished_at": naive}),
                ],
                [done.id],
                (
                    run.id,
                    run.version,
                    {"status": "completed", "output": {"a": 1}, "finished_at": naive},
                ),
                [(run.id, "run.completed", "coordinator", {"n": [1, 2]})],
            )

        def chain_step(run: RunRecord, tasks: list[TaskRecord], stale: TaskRecord) -> DecisionWrite:
            # A chain's pass: queue the next task, settle the finished ones; no run change.
            return DecisionWrite(
                [TaskChange(tasks[0].id, 1, {"status": "queued", "queued_at": naive})],
                [tasks[3].id, stale.id],
                None,
                [],
            )

        for shape in (decision, chain_step):
            results = []
            for write in (
                store.apply_decisions,
                functools.partial(SqlStore.apply_decisions, store),
            ):
                run, tasks = await seed(store, 4, status="pending")
                _, (other,) = await seed(store, 1, status="pending")
                await store.update_tasks([TaskChange(tasks[3].id, 1, {"status": "completed"})])
                ((won, updated),) = await write([shape(run, tasks, other)])
                rows = await store.get_tasks(run.id)
                events = await store.list_events(run.id)
                results.append(
                    (
                        sorted({t.id: n for n, t in enumerate([*tasks, other])}[w] for w in won),
                        _without_ids(updated),
                        [_without_ids(r) for r in rows],
                        _without_ids(await store.get_task(other.id)),
                        [(e.kind, e.actor, e.detail) for e in events],
                    )
                )
            raw, generic = results
            assert raw == generic
            if shape is decision:
                assert raw[0] == [0, 1, 4]
                assert raw[4] == [("run.completed", "coordinator", {"n": [1, 2]})]
            else:
                assert raw[0] == [0]
                assert [r["settled"] for r in raw[2]] == [False, False, False, True]
                assert raw[3]["settled"]
    finally:
        await drop_postgres(store)


async def test_postgres_write_and_claim_equals_a_write_then_a_claim() -> None:
    """``apply_and_claim``: a chain step's write claiming its queued task in one statement
    leaves the rows, attempt and results of the write followed by ``claim``; a lost
    compare-and-set claims nothing; any other write falls back to exactly that sequence."""
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        now = await store.now()

        def step(run: RunRecord, tasks: list[TaskRecord], version: int) -> DecisionWrite:
            values = {"status": "queued", "rendered": {"a": "ä"}, "queued_at": now}
            values |= {"available_at": now, "published_at": now}
            return DecisionWrite(
                [TaskChange(tasks[1].id, version, values)], [tasks[0].id], None, []
            )

        def finishing(run: RunRecord, tasks: list[TaskRecord], version: int) -> DecisionWrite:
            # Queues a task and changes the run: not one statement, applied then claimed.
            write = step(run, tasks, version)
            run_change = (run.id, run.version, {"status": "running"})
            events = [(run.id, "run.started", "coordinator", {})]
            return dataclasses.replace(write, run_change=run_change, events=events)

        async def then_claim(write: DecisionWrite, ids: list[str]) -> Any:
            ((won, updated),) = await store.apply_decisions([write])
            return (won, updated), await store.claim([i for i in ids if i in won], "w1", 30)

        fused = functools.partial(store.apply_and_claim, worker_id="w1", lease_seconds=30)
        for shape, version in ((step, 1), (step, 7), (finishing, 1)):
            results = []
            for write in (fused, then_claim):
                run, tasks = await seed(store, 3, status="pending")
                await store.update_tasks([TaskChange(tasks[0].id, 1, {"status": "completed"})])
                (won, updated), claimed = await write(shape(run, tasks, version), [tasks[1].id])
                attempts = await store.get_attempts(run.id)
                results.append(
                    (
                        [{t.id: n for n, t in enumerate(tasks)}[w] for w in won],
                        _without_ids(updated),
                        [_without_times(r) for r in await store.get_tasks(run.id)],
                        [(t.name, t.status, t.version, a.number, a.worker_id) for t, a in claimed],
                        [
                            (a.number, a.status, a.worker_id, a.lease_expires_at > now)
                            for a in attempts
                        ],
                        [e.kind for e in await store.list_events(run.id)],
                    )
                )
            one, two = results
            assert one == two
            if version == 1:
                assert one[0] == [1]
                assert one[3] == [(tasks[1].name, "running", 3, 1, "w1")]
                assert one[4] == [(1, "running", "w1", True)]
                assert [r["settled"] for r in one[2]] == [True, False, False]
            else:
                assert one[0] == [] and one[3] == [] and one[4] == []
                assert [r["status"] for r in one[2]] == ["completed", "pending", "pending"]
    finally:
        await drop_postgres(store)


async def test_postgres_write_and_claim_many_equals_each_alone() -> None:
    """``apply_and_claim_many``: chain steps of several runs in one statement leave what
    ``apply_and_claim`` leaves for each of them, a lost compare-and-set among them included;
    a write that is not a chain step is applied as alone."""
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        now = await store.now()

        def step(run: RunRecord, tasks: list[TaskRecord], version: int, n: int) -> DecisionWrite:
            values = {"status": "queued", "rendered": {"n": n}, "queued_at": now}
            values |= {"available_at": now, "published_at": now}
            return DecisionWrite(
                [TaskChange(tasks[1].id, version, values)], [tasks[0].id], None, []
            )

        def finishing(
            run: RunRecord, tasks: list[TaskRecord], version: int, n: int
        ) -> DecisionWrite:
            write = step(run, tasks, version, n)
            run_change = (run.id, run.version, {"status": "running"})
            return dataclasses.replace(write, run_change=run_change)

        shapes = ((step, 1), (step, 1), (step, 7), (finishing, 1), (step, 1))

        async def seeded() -> list[tuple[RunRecord, list[TaskRecord], DecisionWrite]]:
            made = []
            for shape, version in shapes:
                run, tasks = await seed(store, 3, status="pending")
                await store.update_tasks([TaskChange(tasks[0].id, 1, {"status": "completed"})])
                made.append((run, tasks, shape(run, tasks, version, len(made))))
            return made

        async def outcome(made: list[Any], results: list[Any]) -> list[Any]:
            rows = []
            for (run, tasks, _), ((won, updated), claimed) in zip(made, results, strict=True):
                index = {t.id: n for n, t in enumerate(tasks)}
                rows.append(
                    (
                        [index[w] for w in won],
                        _without_ids(updated),
                        [_without_times(r) for r in await store.get_tasks(run.id)],
                        [(index[t.id], t.status, t.version, a.number) for t, a in claimed],
                        [
                            (a.number, a.status, a.worker_id)
                            for a in await store.get_attempts(run.id)
                        ],
                    )
                )
            return rows

        made = await seeded()
        requests = [(write, [tasks[1].id]) for _, tasks, write in made]
        together = await outcome(made, await store.apply_and_claim_many(requests, "w1", 30))
        made = await seeded()
        alone = [
            await store.apply_and_claim(write, [tasks[1].id], "w1", 30) for _, tasks, write in made
        ]
        assert together == await outcome(made, alone)
        assert [row[3] for row in together] == [
            [(1, "running", 3, 1)],
            [(1, "running", 3, 1)],
            [],  # its compare-and-set lost: nothing moved but the settled mark
            [(1, "running", 3, 1)],
            [(1, "running", 3, 1)],
        ]
        assert [[r["settled"] for r in row[2]] for row in together] == [[True, False, False]] * 5
        # Each task got its own change's values.
        assert [row[2][1]["rendered"] for row in together] == [{"n": n} for n in (0, 1)] + [
            None,
            {"n": 3},
            {"n": 4},
        ]
    finally:
        await drop_postgres(store)


def _without_times(task: TaskRecord) -> dict[str, Any]:
    """A task without its ids and times (a claim's start differs from one try to the next)."""
    fields = _without_ids(task)
    fields.pop("started_at")
    return fields


def _without_ids(record: Any) -> Any:
    if record is None:
        return None
    fields = {name: getattr(record, name) for name in record.__slots__}
    for key in ("id", "run_id", "created_at", "attempt_id", "queued_at", "available_at"):
        fields.pop(key, None)
    return fields


async def test_postgres_one_statement_create_run_equals_the_generic_one() -> None:
    """store/pg_submit.py writes what SqlStore.create_run writes, events included."""
    store = await open_postgres(f"treadle_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        now = await store.now()
        naive = now.replace(tzinfo=None)
        written = []
        for create in (store.create_run, functools.partial(SqlStore.create_run, store)):
            run = dataclasses.replace(
                make_run(now, output=None, deadline_at=naive), labels={"ä": [1, None]}
            )
            tasks = [
                make_task(run.id, 0, now, status="pending", rendered=None, output={"x": None}),
                make_task(run.id, 1, naive, available_at=naive, settled=True, error="e"),
            ]
            await create(run, tasks, events=[("run.created", "api", {"v": 1})])
            events = await store.list_events(run.id)
            written.append(
                (
                    _without_ids(await store.get_run(run.id)),
                    [_without_ids(task) for task in await store.get_tasks(run.id)],
                    [(e.kind, e.actor, e.detail, e.at) for e in events],
                )
            )
            assert (await store.get_tasks(run.id))[0] == tasks[0]  # every time aware here
        assert written[0] == written[1]
    finally:
        await drop_postgres(store)
