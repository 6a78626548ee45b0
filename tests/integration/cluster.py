"""A treadle cluster of real processes (api, coordinators, workers) on real services.

Every cluster gets its own namespace: a PostgreSQL schema for the store, and a schema, key prefix
or queue prefix on the broker, all removed afterwards. Processes log to files under the test's
tmp folder; a failing test prints their tails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, free_port
from tests.services import service_down

POSTGRES_URL = os.environ.get("TREADLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TREADLE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("TREADLE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("TREADLE_TEST_NATS", "nats://127.0.0.1:4222")

FULL = os.environ.get("TREADLE_FULL_TESTS", "") not in ("", "0")
#: Broker options for quick recovery in tests (reconnect backoff capped at half a second).
QUICK = "retry_initial=0.05&retry_max=0.5&poll_interval=0.2"


def with_options(url: str, options: str) -> str:
    return url + ("&" if "?" in url else "?") + options if options else url


def broker_url(kind: str, namespace: str, extra: str = "") -> str:
    options = QUICK + (f"&{extra}" if extra else "")
    if kind == "postgres":
        return with_options(POSTGRES_URL, f"schema={namespace}_b&{options}")
    if kind == "redis":
        return with_options(REDIS_URL, f"prefix={namespace}&{options}")
    if kind == "rabbitmq":
        return with_options(RABBITMQ_URL, f"prefix={namespace}&{options}")
    if kind == "nats":
        return with_options(NATS_URL, f"prefix={namespace}&{options}")
    raise ValueError(kind)


# -- SQL on the cluster's store --------------------------------------------------------------
async def _fetch(schema: str, query: str, *args: Any) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        return [dict(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def sql(schema: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on the store's schema (a fresh event loop: tests here are synchronous)."""
    return asyncio.run(_fetch(schema, query, *args))


# -- cleanup -----------------------------------------------------------------------------------
async def _drop(namespace: str, kind: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        for schema in (namespace, f"{namespace}_b"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    if kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif kind == "rabbitmq":
        import aio_pika

        names = rabbitmq_queues(namespace)
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name)
    elif kind == "nats":
        import nats
        import nats.js.errors

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(namespace)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        service_down("rabbitmqctl", "not on PATH")
    done = subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def rabbitmq_queues(namespace: str) -> list[str]:
    out = rabbitmqctl("list_queues", "-q", "--no-table-headers", "name")
    return [n.strip() for n in out.splitlines() if n.strip().startswith(f"{namespace}.")]


# -- processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    """One treadle process."""

    role: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Cluster:
    """Processes sharing one store schema and one broker namespace."""

    tmp: Path
    broker_kind: str
    namespace: str = field(default_factory=lambda: f"ti_{uuid.uuid4().hex[:10]}")
    broker_extra: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    api_url: str = ""
    #: The store URL the processes use (default: :attr:`db`); e.g. through a relay.
    db_override: str = ""

    @property
    def db(self) -> str:
        return with_options(POSTGRES_URL, f"schema={self.namespace}")

    @property
    def broker(self) -> str:
        return broker_url(self.broker_kind, self.namespace, self.broker_extra)

    def _spawn(self, role: str, args: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{role}-{len(self.procs)}.log"
        full_env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
            "TREADLE_DB": self.db_override or self.db,
            "TREADLE_BROKER": self.broker,
            **self.env,
            **(env or {}),
        }
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "treadle.cli.main", role, *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=self.tmp,
            )
        proc = Proc(role, popen, log)
        self.procs.append(proc)
        return proc

    def _wait_running(self, proc: Proc, timeout: float = 60) -> Proc:
        def ready() -> bool:
            if not proc.alive():
                raise AssertionError(f"{proc.role} exited: {proc.text()}")
            return "running; Ctrl-C to stop" in proc.text()

        wait_for(ready, timeout, f"{proc.role} to start")
        return proc

    def migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "treadle.cli.main", "migrate", "--db", self.db],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            if "unreachable" in done.stderr or "cannot" in done.stderr:
                service_down("PostgreSQL", done.stderr.strip())
            raise AssertionError(f"migrate failed: {done.stderr}")

    def api(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Proc:
        port = free_port()
        proc = self._spawn("api", ["--port", str(port), *args], env)
        self.api_url = f"http://127.0.0.1:{port}"
        if wait:
            self.wait_ready(proc)
        return proc

    def coordinator(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Proc:
        proc = self._spawn("coordinator", args, env)
        return self.wait_ready(proc) if wait else proc

    def worker(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Proc:
        full = ["--import", "tests.integration.handlers", *args]
        proc = self._spawn("worker", full, env)
        return self.wait_ready(proc) if wait else proc

    def wait_ready(self, *procs: Proc, timeout: float = 120) -> Proc:
        """Wait until each process serves: the api answers /readyz, others log "running"."""
        for proc in procs:
            if proc.role == "api":
                url = self.api_url

                def ready(proc: Proc = proc, url: str = url) -> bool:
                    if not proc.alive():
                        raise AssertionError(f"api exited: {proc.text()}")
                    try:
                        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_for(ready, timeout, "the api to be ready")
            else:
                self._wait_running(proc, timeout)
        return procs[-1]

    def start(self, workers: int = 2, worker_args: Sequence[str] = ()) -> None:
        """api + coordinator + ``workers`` workers, started together."""
        procs = [
            self.api(wait=False),
            self.coordinator(wait=False),
            *(self.worker(*worker_args, wait=False) for _ in range(workers)),
        ]
        self.wait_ready(*procs)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30.0)

    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        return sql(self.namespace, query, *args)

    def post_runs(self, definition: dict[str, Any], count: int, threads: int = 8) -> list[str]:
        """Store ``definition`` and start ``count`` runs of it over HTTP; return their ids."""
        from concurrent.futures import ThreadPoolExecutor

        with self.client() as client:
            created = client.post("/api/v1/definitions", json=definition)
            assert created.status_code in (200, 201), created.text

            def post(i: int) -> str:
                reply = client.post(
                    "/api/v1/runs", json={"definition": definition["name"], "inputs": {}}
                )
                assert reply.status_code == 201, reply.text
                return str(reply.json()["id"])

            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(post, range(count)))

    def run_counts(self) -> dict[str, int]:
        rows = self.sql("SELECT status, count(*) AS n FROM treadle_runs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    def wait_runs_finished(self, count: int, timeout: float) -> dict[str, int]:
        """Wait until ``count`` runs are terminal; return runs per status."""

        def done() -> dict[str, int] | None:
            counts = self.run_counts()
            finished = sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled"))
            return counts if finished >= count else None

        try:
            return dict(wait_for(done, timeout, f"{count} runs to finish", interval=0.25))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; runs: {self.run_counts()}\n{self.logs()}") from None

    def double_completions(self) -> list[dict[str, Any]]:
        """Tasks with more than one completed attempt (must never happen)."""
        return self.sql(
            "SELECT task_id, count(*) AS n FROM treadle_attempts WHERE status = 'completed' "
            "GROUP BY task_id HAVING count(*) > 1"
        )

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.role} {p.pid} ---\n{p.text()[-tail:]}" for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=15)
        try:
            asyncio.run(_drop(self.namespace, self.broker_kind))
        except Exception as exc:  # cleanup must not hide the test's own result
            print(f"cleanup of {self.namespace} failed: {exc}")


class Relay:
    """A TCP relay (in a thread) to a service: :meth:`down` makes the service "go away" for
    the processes that connect through it, :meth:`up` brings it back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        import threading

        self._target = (host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _up(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            writer.transport.abort()

    def up(self) -> None:
        self._call(self._up())

    def down(self) -> None:
        self._call(self._down())

    def close(self) -> None:
        self.down()

        async def drain() -> None:
            # Let the aborted transports and pipe tasks finish before the loop closes.
            await asyncio.sleep(0.2)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
