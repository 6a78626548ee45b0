"""Engine-level fixtures: a Node running coordinator + worker in-process, per store URL.

``store_url`` is a fresh SQLite file, or a fresh PostgreSQL schema (dropped afterwards) for the
``postgres`` parameter. Modules that must hold on both stores say so with
``pytestmark = BOTH_STORES``; elsewhere PostgreSQL joins when ``TREADLE_TEST_PG`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.store_services import POSTGRES_URL, drop_postgres, open_postgres, with_option
from tests.integration.cluster import Cluster
from treadle.api.app import create_app
from treadle.broker.memory import MemoryBroker
from treadle.config import Settings
from treadle.engine.node import Node
from treadle.engine.service import EngineService
from treadle.model.states import RunStatus
from treadle.secrets.vault import generate_key
from treadle.store.factory import open_store
from treadle.store.records import RunRecord, TaskRecord


def _store_urls() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get("TREADLE_TEST_PG") else ["sqlite"]


#: Run every test of a module on SQLite and on PostgreSQL (``pytestmark = BOTH_STORES``).
BOTH_STORES = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
#: For a test whose PostgreSQL run adds little over a faster representative one.
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@contextlib.asynccontextmanager
async def fresh_store(kind: str, tmp_path: Path, prefix: str) -> AsyncIterator[str]:
    """The URL of a fresh SQLite file (``kind`` "sqlite"), or of a fresh PostgreSQL schema
    named ``prefix_<random>`` that is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'treadle.db'}"
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    probe = await open_postgres(schema)  # fails under CI, skips elsewhere, when PG is down
    await probe.close()
    try:
        yield with_option(POSTGRES_URL, f"schema={schema}")
    finally:
        await drop_postgres(await open_postgres(schema))


@pytest.fixture(params=_store_urls())
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL schema that is dropped after the test."""
    async with fresh_store(request.param, tmp_path, "treadle_sem") as url:
        yield url


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db": url,
        "broker": "memory://",
        "queues": {"default": 4},
        "heartbeat_seconds": 1.0,
        "lease_seconds": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def node_with_secrets(
    url: str, secrets: dict[str, str], **overrides: Any
) -> AsyncIterator[Node]:
    """A started coordinator + worker node with a fresh secret key and these secrets stored."""
    node = Node(
        settings_for(url, secret_key=generate_key(), **overrides), ["coordinator", "worker"]
    )
    service = await node.start()
    assert node.vault is not None
    for name, value in secrets.items():
        await service.store.put_secret(name, node.vault.encrypt(value))
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def service(store_url: str) -> AsyncIterator[EngineService]:
    node = Node(settings_for(store_url), ["coordinator", "worker"])
    svc = await node.start()
    try:
        yield svc
    finally:
        await node.stop()


@pytest.fixture
async def bare_service(store_url: str) -> AsyncIterator[EngineService]:
    """A store and the in-process broker with no coordinator or worker running: the test
    drives the engine's steps itself."""
    store = open_store(store_url)
    await store.migrate()
    broker = MemoryBroker()
    await broker.connect()
    try:
        yield EngineService(store, broker, queue_rates={})
    finally:
        await broker.close()
        await store.close()


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(store_url), roles=("api", "coordinator", "worker"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://treadle") as client:
            yield client


async def wait_run(service: EngineService, run_id: str, timeout: float = 30.0) -> RunRecord:
    """Poll until the run is terminal."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await service.get_run(run_id)
        if RunStatus(run.status).terminal:
            return run
        if loop.time() > deadline:
            tasks = await service.get_tasks(run_id)
            counts: dict[str, int] = {}
            for t in tasks:
                counts[t.status] = counts.get(t.status, 0) + 1
            top = {t.name: t.status for t in tasks if t.parent_id is None}
            raise AssertionError(
                f"run {run_id} still {run.status} after {timeout}s: {top}, all: {counts}"
            )
        await asyncio.sleep(0.05)


async def wait_task(
    service: EngineService, run_id: str, name: str, statuses: set[str], timeout: float = 20.0
) -> TaskRecord:
    """Poll until the named task is in one of ``statuses``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task = await service.task_by_name(run_id, name)
        if task.status in statuses:
            return task
        if loop.time() > deadline:
            raise AssertionError(f"task {name} still {task.status}, wanted {statuses}")
        await asyncio.sleep(0.05)


async def wait_api(client: httpx.AsyncClient, run_id: str, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        if loop.time() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']}")
        await asyncio.sleep(0.05)


def by_name(tasks: list[TaskRecord]) -> dict[str, TaskRecord]:
    return {t.name: t for t in tasks}


# -- clusters of real processes (tests/integration/cluster.py) ----------------------------------
@pytest.fixture
def make_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster("rabbitmq")`` -> a migrated, empty cluster namespace (no process yet)."""
    made: list[Cluster] = []

    def make(broker: str, broker_extra: str = "", env: dict[str, str] | None = None) -> Cluster:
        cluster = Cluster(tmp_path, broker, broker_extra=broker_extra, env=dict(env or {}))
        made.append(cluster)
        cluster.migrate()
        return cluster

    yield make
    for cluster in made:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(cluster.logs())
        cluster.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
