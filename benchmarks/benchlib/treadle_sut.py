"""treadle as a system under test: embedded (one process) or distributed (real processes).

Distributed mode runs one ``treadle coordinator`` and ``WORKER_PROCESSES`` ``treadle worker``
processes against the local services; the harness submits through an
:class:`~treadle.engine.service.EngineService` holding only a store and a broker, as the API
would. Times come from the store: a run's ``finished_at`` ends a workload, a task's
``started_at`` (set when a worker claims it) is its start for the latency workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from benchlib.common import (
    CONCURRENCY,
    NATS,
    PEER_REDIS_DB,
    PG,
    RABBIT,
    REDIS,
    WORKER_PROCESSES,
    Procs,
    child_env,
    new_prefix,
    python,
)
from benchlib.peers import drop_redis_prefix
from treadle.model.parse import MAX_TASKS

T = TypeVar("T")


def chain_doc(steps: int, name: str = "chain") -> dict[str, Any]:
    """Tasks without depends_on run in file order: the native chain."""
    return {"name": name, "tasks": [{"name": f"s{i}", "kind": "noop"} for i in range(steps)]}


def independent_docs(n: int) -> list[dict[str, Any]]:
    """N independent tasks as runs of at most MAX_TASKS tasks each (the definition limit)."""
    sizes = [min(MAX_TASKS, n - start) for start in range(0, n, MAX_TASKS)]
    return [
        {
            "name": "throughput",
            "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(size)],
        }
        for size in sizes
    ]


def fanout_doc(width: int) -> dict[str, Any]:
    """A root, then one task fanned out over ``width`` items (``each``), then a join."""
    return {
        "name": "fanout",
        "tasks": [
            {"name": "root", "kind": "noop", "depends_on": []},
            {"name": "fan", "kind": "noop", "each": list(range(width))},
            {"name": "join", "kind": "noop"},
        ],
    }


class TreadleSystem:
    """One treadle mode; every workload method returns seconds or latencies in ms."""

    def __init__(self, folder: Path, mode: str, vhost: str | None) -> None:
        self.folder = folder
        self.mode = mode
        self.name = f"treadle:{mode}"
        self.vhost = vhost
        self.prefix = new_prefix()
        self.procs = Procs(folder)
        self.loop = asyncio.new_event_loop()
        self.node: Any = None
        self.service: Any = None
        self.database: str | None = None
        if mode == "embedded":
            self.settings = f"1 process (SQLite WAL + in-process queue), {2 * CONCURRENCY} slots"
        else:
            self.settings = (
                f"1 `treadle coordinator` + {WORKER_PROCESSES} x `treadle worker --queue "
                f"default:{CONCURRENCY}`"
            )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    # -- lifecycle ------------------------------------------------------------------------
    def store_url(self) -> str:
        store = self.mode.split("+")[0]
        if store == "pg":
            self.database = self.prefix
            return f"{PG}/{self.database}"
        if store == "redis":
            return f"{REDIS}/{PEER_REDIS_DB}?prefix={self.prefix}:s:"
        raise ValueError(f"unknown treadle store {store!r}")

    def broker_url(self) -> str:
        broker = self.mode.split("+")[1]
        urls = {
            "redis": f"{REDIS}/{PEER_REDIS_DB}?prefix={self.prefix}",
            "rabbitmq": f"{RABBIT}/{self.vhost}?prefix={self.prefix}",
            "pg": f"{PG}/{self.database or self.prefix}?schema=broker",
            "nats": f"{NATS}?prefix={self.prefix}",
        }
        if broker not in urls:
            raise ValueError(f"unknown treadle broker {broker!r}")
        return urls[broker]

    def start(self) -> None:
        self.run(self._start())

    async def _start(self) -> None:
        from treadle.broker.factory import open_broker
        from treadle.config import load_settings
        from treadle.engine.node import Node
        from treadle.engine.service import EngineService
        from treadle.store.factory import open_store

        if self.mode == "embedded":
            settings = load_settings(
                None,
                db=f"sqlite:///{self.folder}/embedded.db",
                broker="memory://",
                queues={"default": 2 * CONCURRENCY},
            )
            self.node = Node(settings, ("coordinator", "worker"))
            self.service = await self.node.start()
            return
        if self.mode.startswith("pg+"):
            import asyncpg

            conn = await asyncpg.connect(f"{PG}/postgres")
            await conn.execute(f'CREATE DATABASE "{self.prefix}"')
            await conn.close()
        db, broker_url = self.store_url(), self.broker_url()
        store = open_store(db)
        await store.migrate()
        broker = open_broker(broker_url)
        await broker.connect()
        # As `treadle api` with default settings submits (no queue rate limits).
        self.service = EngineService(store, broker, queue_rates={})
        env = child_env()
        base = [python(), "-m", "treadle.cli.main"]
        common = ["--db", db, "--broker", broker_url, "--no-automigrate"]
        self.procs.start("coordinator", [*base, "coordinator", *common], env)
        for _ in range(WORKER_PROCESSES):
            self.procs.start(
                "worker", [*base, "worker", *common, "--queue", f"default:{CONCURRENCY}"], env
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.procs.check()
            alive = [w for w in await store.list_workers() if w.status == "alive"]
            if len(alive) >= WORKER_PROCESSES:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name}: workers did not register within 60 s")

    def stop(self) -> None:
        if self.node is not None:
            self.run(self.node.stop())
        else:
            self.procs.stop()
            if self.service is not None:
                self.run(self.service.broker.close())
                self.run(self.service.store.close())
            self.run(self._drop())
        self.loop.close()

    async def _drop(self) -> None:
        if self.database:
            import asyncpg

            conn = await asyncpg.connect(f"{PG}/postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await conn.close()
        if "redis" in self.mode:
            drop_redis_prefix(self.prefix)
        if self.mode.endswith("+nats"):
            import nats

            nc = await nats.connect(NATS)
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(self.prefix)
            await nc.close()

    # -- workloads ------------------------------------------------------------------------
    async def _wait(self, run_ids: list[str], cap: float) -> list[Any]:
        deadline = time.monotonic() + cap
        runs = []
        for run_id in run_ids:
            if self.node is None:
                self.procs.check()
            left = deadline - time.monotonic()
            # Times come from the store (finished_at), not from when this loop notices: a
            # slower poll only spares the measured processes the harness's reads of the run.
            run = await self.service.wait_run(run_id, timeout=max(left, 0.01), poll=0.05)
            if run.status != "completed":
                raise RuntimeError(f"{self.name}: run {run_id} ended {run.status}: {run.error}")
            runs.append(run)
        return runs

    async def _timed(self, docs: list[dict[str, Any]], cap: float) -> float:
        started = time.time()
        ids = [(await self.service.start_run(doc)).id for doc in docs]
        runs = await self._wait(ids, cap)
        return max(r.finished_at.timestamp() for r in runs) - started

    def throughput(self, n: int, cap: float) -> float:
        return self.run(self._timed(independent_docs(n), cap))

    def chain(self, steps: int, cap: float) -> float:
        return self.run(self._timed([chain_doc(steps)], cap))

    def chains(self, runs: int, steps: int, cap: float) -> float:
        return self.run(self._timed([chain_doc(steps)] * runs, cap))

    def fanout(self, width: int, cap: float) -> float:
        return self.run(self._timed([fanout_doc(width)], cap))

    def latency(self, rate: float, seconds: float, cap: float) -> list[float]:
        return self.run(self._latency(rate, seconds, cap))

    async def _latency(self, rate: float, seconds: float, cap: float) -> list[float]:
        doc = chain_doc(1, "latency")
        count = int(rate * seconds)
        submitted: list[tuple[str, float]] = []
        origin = time.time() + 0.05
        for i in range(count):
            intended = origin + i / rate
            pause = intended - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            # From the submit call itself: the loop's timer may wake a millisecond after
            # `intended`, which is the harness's delay, not the system's.
            called = time.time()
            run = await self.service.start_run(doc)
            submitted.append((run.id, called))
        await self._wait([run_id for run_id, _ in submitted], cap)
        latencies = []
        for run_id, called in submitted:
            (task,) = await self.service.store.get_tasks(run_id)
            latencies.append((task.started_at.timestamp() - called) * 1000)
        return latencies

    def warmup(self) -> None:
        self.throughput(200, 60)
        self.chain(5, 60)
