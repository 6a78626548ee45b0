"""Container tasks go only to workers with a container engine (issue 6).

Two workers share one store and one broker: one can run containers, one cannot. Every container
task must run on the capable one; with no capable worker around, a container task waits
``queued`` (it does not fail) until one starts. On the memory broker and on Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract import broker_fixtures
from tests.contract.broker_fixtures import BrokerKit
from tests.integration.conftest import wait_run, wait_task
from tests.integration.test_container_runtime import IMAGE, engine_host
from treadle.engine.coordinator import Coordinator, CoordinatorSettings
from treadle.engine.service import EngineService
from treadle.runtime import registry
from treadle.runtime.container import ContainerRuntime
from treadle.store.base import Store
from treadle.store.factory import open_store
from treadle.worker.worker import Worker, WorkerSettings

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

__all__ = ["engine_host"]  # a fixture, imported to share the one-time engine setup


@pytest.fixture(params=["memory", "redis"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[BrokerKit]:
    async for value in broker_fixtures._make_kit(request.param):
        yield value


@pytest.fixture
def container_runtime(engine_host: str) -> Iterator[ContainerRuntime]:
    runtime = ContainerRuntime({"container_host": engine_host, "container_stop_grace": 1})
    saved = registry.runtime_for("container")
    # One registry per process: the incapable worker could run containers too if it got one,
    # so only routing keeps container tasks away from it.
    registry.register_runtime("container", runtime.run)
    try:
        yield runtime
    finally:
        if saved is not None:
            registry.register_runtime("container", saved)
        runtime.close()


class Cluster:
    """A coordinator and workers in this process, each with its own broker connection."""

    def __init__(self, store: Store, kit: BrokerKit) -> None:
        self.store = store
        self.kit = kit
        self.workers: list[Worker] = []
        self.coordinator: Coordinator | None = None
        self.service: EngineService | None = None

    async def start(self) -> EngineService:
        broker = await self.kit.open()
        self.coordinator = Coordinator(self.store, broker, CoordinatorSettings(sweep_seconds=0.5))
        await self.coordinator.start()
        self.service = EngineService(self.store, broker)
        self.service.coordinator = self.coordinator
        return self.service

    async def worker(self, name: str, containers: bool) -> Worker:
        worker = Worker(
            self.store,
            await self.kit.open(),
            WorkerSettings(queues={"default": 3}, heartbeat_seconds=1.0, worker_id=name),
            capabilities={"containers": containers},
        )
        await worker.start()
        self.workers.append(worker)
        return worker

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop(grace=5)
        if self.coordinator is not None:
            await self.coordinator.stop()


@pytest.fixture
async def cluster(tmp_path: Path, kit: BrokerKit) -> AsyncIterator[Cluster]:
    store = open_store(f"sqlite:///{tmp_path / 'treadle.db'}")
    await store.migrate()
    made = Cluster(store, kit)
    try:
        yield made
    finally:
        await made.stop()
        await store.close()


def _container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "container",
        "image": IMAGE,
        "run": f"echo {name}",
        "depends_on": [],
    }


def _shell(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "shell", "command": ["echo", name], "depends_on": []}


async def test_container_tasks_run_only_on_the_capable_worker(
    cluster: Cluster, container_runtime: ContainerRuntime
) -> None:
    service = await cluster.start()
    capable = await cluster.worker("with-engine", containers=True)
    plain = await cluster.worker("without-engine", containers=False)
    definition = {
        "name": "mixed",
        "tasks": [_container(f"c{i}") for i in range(4)] + [_shell(f"s{i}") for i in range(6)],
    }
    run = await service.start_run(definition, {})
    finished = await wait_run(service, run.id, timeout=240)
    tasks = {t.id: t for t in await service.get_tasks(run.id)}
    assert finished.status == "completed", {t.name: t.error for t in tasks.values()}
    attempts = await service.get_attempts(run.id)
    ran_on = {tasks[a.task_id].name: a.worker_id for a in attempts}
    print("attempts per worker:", ran_on)
    for name, worker in ran_on.items():
        if name.startswith("c"):
            assert worker == capable.id, ran_on
    assert {t.queue for t in tasks.values() if t.name.startswith("c")} == {"default.containers"}
    assert {t.queue for t in tasks.values() if t.name.startswith("s")} == {"default"}
    print("completed by the worker without an engine:", plain.completed)


async def test_a_container_task_waits_queued_until_a_capable_worker_comes(
    cluster: Cluster, container_runtime: ContainerRuntime
) -> None:
    service = await cluster.start()
    plain = await cluster.worker("without-engine", containers=False)
    definition = {"name": "waits", "tasks": [_container("box"), _shell("plain")]}
    run = await service.start_run(definition, {})
    shell = await wait_task(service, run.id, "plain", {"completed"}, timeout=60)
    assert shell.status == "completed"
    # The incapable worker has had time to take it, and the coordinator to ring it again.
    for _ in range(30):
        box = await service.task_by_name(run.id, "box")
        assert box.status == "queued", box
        assert box.attempt_count == 0
        await asyncio.sleep(0.1)
    capable = await cluster.worker("with-engine", containers=True)
    finished = await wait_run(service, run.id, timeout=240)
    assert finished.status == "completed"
    attempts = await service.get_attempts(run.id)
    by_task = {(await cluster.store.get_task(a.task_id)).name: a.worker_id for a in attempts}
    assert by_task == {"box": capable.id, "plain": plain.id}
