"""Distributed-mode benchmark: 1 coordinator + 2 worker processes on PostgreSQL, per broker.

For each broker (PostgreSQL, Redis, RabbitMQ, NATS) in its own namespace (store schema, broker
schema / prefix), it measures:

- throughput: ``noop`` tasks/s for N independent tasks (RUNS runs of WIDTH root tasks, created
  before the coordinator starts; timed in the store's own clock from the first attempt's start
  to the last attempt's end, so process start-up is not counted);
- chain: ms per step of one run of a 40-step ``noop`` chain (run created -> run finished);
- baseline, measured in the same run on the same PostgreSQL: one raw ``INSERT`` + one
  ``UPDATE`` per task (autocommit, one connection), as tasks/s and ms per task. Each treadle
  figure is also printed as a ratio to it.

Prints a Markdown table. Usage:
    python benchmarks/distributed.py [--tasks 5000] [--chain 40] [--brokers postgres,redis,...]
        [--concurrency 16] [--json FILE]
Needs the services of DESIGN.md §8 (override URLs with TREADLE_TEST_POSTGRES etc.).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TREADLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BROKERS = {
    "postgres": POSTGRES_URL,
    "redis": os.environ.get("TREADLE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("TREADLE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("TREADLE_TEST_NATS", "nats://127.0.0.1:4222"),
}
WIDTH = 20


def with_options(url: str, options: str) -> str:
    return url + ("&" if "?" in url else "?") + options


@dataclass
class Result:
    broker: str
    tasks: int
    tasks_per_s: float
    chain_steps: int
    ms_per_step: float


# -- baseline ------------------------------------------------------------------------------------
async def baseline(tasks: int) -> tuple[float, float]:
    """(tasks/s, ms per task) of one INSERT + one UPDATE per task on the same PostgreSQL."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(
            "CREATE TEMP TABLE bench_tasks (id bigint PRIMARY KEY, status text NOT NULL)"
        )
        start = time.perf_counter()
        for i in range(tasks):
            await conn.execute("INSERT INTO bench_tasks VALUES ($1, 'queued')", i)
            await conn.execute("UPDATE bench_tasks SET status = 'completed' WHERE id = $1", i)
        elapsed = time.perf_counter() - start
    finally:
        await conn.close()
    return tasks / elapsed, elapsed / tasks * 1000


# -- one broker --------------------------------------------------------------------------------
class Bench:
    def __init__(
        self, broker: str, concurrency: int, folder: Path, profile: Path | None = None
    ) -> None:
        self.broker_kind = broker
        self.profile = profile
        self.ns = f"bench_{uuid.uuid4().hex[:8]}"
        self.db = with_options(POSTGRES_URL, f"schema={self.ns}&pool_size=10")
        option = "schema" if broker == "postgres" else "prefix"
        self.broker = with_options(BROKERS[broker], f"{option}={self.ns}_b")
        self.concurrency = concurrency
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "TREADLE_DB": self.db,
            "TREADLE_BROKER": self.broker,
            "TREADLE_LOG_LEVEL": "warning",
        }
        log = (self.folder / f"{self.ns}-{role}-{len(self.procs)}.log").open("wb")
        command = [sys.executable, "-m", "treadle.cli.main", role, *args]
        if self.profile is not None:
            # Collapsed stacks, one file per process: `sort -k2 -n` or flamegraph.pl reads them.
            out = self.profile / f"{self.broker_kind}-{role}-{len(self.procs)}.txt"
            command = [
                "py-spy",
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                str(out),
                "--",
                *command,
            ]
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.procs.append(proc)
        return proc

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": self.ns})
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def create_runs(self, definition: dict[str, Any], count: int) -> None:
        """Create runs in-process (the doorbells wait in the broker for the coordinator)."""
        from treadle.broker.factory import open_broker
        from treadle.engine.service import EngineService
        from treadle.store.factory import connect_store

        store = await connect_store(self.db, migrate=True)
        broker = open_broker(self.broker)
        await broker.connect()
        try:
            service = EngineService(store, broker)
            await service.create_definition(definition)
            for start in range(0, count, 20):
                await asyncio.gather(
                    *(
                        service.start_run(definition["name"], {})
                        for _ in range(min(20, count - start))
                    )
                )
        finally:
            await broker.close()
            await store.close()

    async def wait_finished(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.sql(
                "SELECT count(*) AS n FROM treadle_runs WHERE status IN "
                "('completed', 'failed', 'cancelled')"
            )
            if rows[0]["n"] >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.broker_kind}: only {rows[0]['n']} of {count} runs")
            await asyncio.sleep(0.25)

    async def run(self, tasks: int, chain: int) -> Result:
        runs = max(1, tasks // WIDTH)
        wide = {
            "name": "bench-wide",
            "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(WIDTH)],
        }
        await self.create_runs(wide, runs)
        self.spawn("coordinator")
        queue = f"default:{self.concurrency}"
        for _ in range(2):
            self.spawn("worker", "--queue", queue)
        await self.wait_finished(runs, timeout=1800)
        span = await self.sql(
            "SELECT count(*) AS n, extract(epoch FROM max(finished_at) - min(started_at)) AS s "
            "FROM treadle_attempts WHERE status = 'completed'"
        )
        done, seconds = int(span[0]["n"]), float(span[0]["s"])
        steps = {
            "name": "bench-chain",
            "tasks": [{"name": f"s{i}", "kind": "noop"} for i in range(chain)],
        }
        await self.create_runs(steps, 1)
        await self.wait_finished(runs + 1, timeout=600)
        took = await self.sql(
            "SELECT extract(epoch FROM finished_at - created_at) AS s, status FROM treadle_runs "
            "WHERE definition_name = 'bench-chain'"
        )
        return Result(
            self.broker_kind, done, done / seconds, chain, float(took[0]["s"]) / chain * 1000
        )

    async def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                # py-spy writes its profile on SIGINT (and stops the process it recorded).
                proc.send_signal(signal.SIGINT if self.profile else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for schema in (self.ns, f"{self.ns}_b"):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
        await self._drop_broker()

    async def _drop_broker(self) -> None:
        prefix = f"{self.ns}_b"
        if self.broker_kind == "redis":
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(BROKERS["redis"])
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        elif self.broker_kind == "rabbitmq":
            import aio_pika

            from treadle.broker.base import COORDINATOR_QUEUE
            from treadle.broker.rabbitmq import amqp_name

            connection = await aio_pika.connect(BROKERS["rabbitmq"])
            async with connection:
                channel = await connection.channel()
                for queue in (COORDINATOR_QUEUE, "default"):
                    await channel.queue_delete(f"{prefix}.{amqp_name(queue)}")
        elif self.broker_kind == "nats":
            import nats
            import nats.js.errors

            nc = await nats.connect(BROKERS["nats"])
            try:
                await nc.jetstream().delete_stream(prefix)
            except nats.js.errors.NotFoundError:
                pass
            finally:
                await nc.close()


def table(results: list[Result], base_tps: float, base_ms: float) -> str:
    lines = [
        "| broker | noop tasks/s | x baseline | ms/step (40-step chain) | x baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.broker} | {r.tasks_per_s:,.0f} | {r.tasks_per_s / base_tps:.3f} | "
            f"{r.ms_per_step:.1f} | {r.ms_per_step / base_ms:.1f} |"
        )
    lines.append(
        f"| baseline: raw INSERT + UPDATE per task | {base_tps:,.0f} | 1 | {base_ms:.2f} | 1 |"
    )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record each process with py-spy (collapsed stacks) into this folder",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    results = []
    base_tps, base_ms = await baseline(args.tasks)
    for broker in args.brokers.split(","):
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        bench = Bench(broker, args.concurrency, folder, args.profile)
        try:
            results.append(await bench.run(args.tasks, args.chain))
        finally:
            await bench.close()
        print(f"{broker}: {results[-1]}", file=sys.stderr)
    load = os.getloadavg()[0]
    print(
        f"\n{platform.python_version()} on {os.cpu_count()} cores, load average {load:.1f}; "
        f"{args.tasks} tasks over {args.tasks // WIDTH} runs, 1 coordinator + 2 workers "
        f"(default:{args.concurrency} each)\n"
    )
    print(table(results, base_tps, base_ms))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"baseline": [base_tps, base_ms], "results": [asdict(r) for r in results]})
        )


if __name__ == "__main__":
    asyncio.run(main())
