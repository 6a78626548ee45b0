"""Fixtures and helpers for the broker contract suite (kept apart from the store's conftest).

Each test gets a :class:`BrokerKit`: an isolated namespace on one real service (its own PostgreSQL
schema, Redis key prefix, RabbitMQ queue prefix or NATS stream) with short timeouts, so that
redelivery after a visibility timeout takes about a second. Everything is removed afterwards.
A service that cannot be reached fails the test when ``CI`` is set and skips it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.services import service_down
from treadle.broker.base import Broker, Delivery
from treadle.broker.factory import open_broker
from treadle.errors import ServiceUnavailable

POSTGRES_URL = os.environ.get("TREADLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TREADLE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("TREADLE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("TREADLE_TEST_NATS", "nats://127.0.0.1:4222")

ALL_KINDS = ["memory", "postgres", "redis", "rabbitmq", "nats"]
#: Brokers that redeliver after a visibility timeout (RabbitMQ and memory tie it to the consumer).
TIMEOUT_KINDS = ["postgres", "redis", "nats"]
#: Options that make every test fast: quick polls, quick redelivery, short reconnect backoff.
FAST = "visibility_timeout=1&poll_interval=0.2&retry_initial=0.05&retry_max=0.5"


def with_options(url: str, options: str) -> str:
    return url + ("&" if "?" in url else "?") + options


@dataclass
class BrokerKit:
    """One isolated broker namespace; :meth:`open` connects another client to it."""

    kind: str
    url: str
    suffix: str
    opened: list[Broker] = field(default_factory=list)
    queues: set[str] = field(default_factory=set)

    @property
    def shared(self) -> bool:
        """The memory broker lives in one object: every :meth:`open` returns that object."""
        return self.kind == "memory"

    @property
    def namespace(self) -> str:
        return f"tb_{self.suffix}"

    def queue(self, label: str = "q") -> str:
        name = f"{label}-{uuid.uuid4().hex[:8]}"
        self.queues.add(name)
        return name

    async def open(self, options: str = "") -> Broker:
        """A connected broker on this namespace (``options`` override the fast defaults)."""
        if self.shared and self.opened:
            return self.opened[0]
        broker = open_broker(with_options(self.url, options) if options else self.url)
        try:
            await broker.connect()
        except ServiceUnavailable as exc:
            service_down(self.kind, exc.message)
        self.opened.append(broker)
        return broker

    async def cleanup(self) -> None:
        for broker in self.opened:
            await broker.close()
        await _drop_namespace(self)


def kit_url(kind: str, suffix: str) -> str:
    name = f"tb_{suffix}"
    if kind == "memory":
        return "memory://"
    if kind == "postgres":
        return with_options(POSTGRES_URL, f"schema={name}&application_name={name}&{FAST}")
    if kind == "redis":
        return with_options(REDIS_URL, f"prefix={name}&{FAST}")
    if kind == "rabbitmq":
        return with_options(RABBITMQ_URL, f"prefix={name}&{FAST}")
    return with_options(NATS_URL, f"prefix={name}&{FAST}")


async def _drop_namespace(kit: BrokerKit) -> None:
    if kit.kind == "postgres":
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{kit.namespace}" CASCADE')
        finally:
            await conn.close()
    elif kit.kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{kit.namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif kit.kind == "rabbitmq":
        import aio_pika

        from treadle.broker.rabbitmq import amqp_name

        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            for queue in kit.queues:
                await channel.queue_delete(f"{kit.namespace}.{amqp_name(queue)}")
    elif kit.kind == "nats":
        import nats
        import nats.js.errors

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(kit.namespace)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()


async def _make_kit(kind: str) -> AsyncIterator[BrokerKit]:
    suffix = uuid.uuid4().hex[:10]
    kit = BrokerKit(kind, kit_url(kind, suffix), suffix)
    try:
        yield kit
    finally:
        await kit.cleanup()


@pytest.fixture(params=ALL_KINDS)
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[BrokerKit]:
    """An isolated namespace on each of the five brokers."""
    async for value in _make_kit(request.param):
        yield value


@pytest.fixture(params=TIMEOUT_KINDS)
async def timeout_kit(request: pytest.FixtureRequest) -> AsyncIterator[BrokerKit]:
    """An isolated namespace on each broker that has a visibility timeout."""
    async for value in _make_kit(request.param):
        yield value


class Collector:
    """Consumes one queue in a background task, as a worker would, and records what it got."""

    def __init__(self, broker: Broker, queue: str, prefetch: int, ack: bool = True) -> None:
        self.received: list[str] = []
        self.held: list[Delivery] = []
        self.max_held = 0
        self.ended = False
        self._ack = ack
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(broker, queue, prefetch))

    async def _run(self, broker: Broker, queue: str, prefetch: int) -> None:
        async for delivery in broker.consume(queue, prefetch):
            self.received.append(delivery.body)
            if self._ack:
                await delivery.ack()
            else:
                self.held.append(delivery)
                self.max_held = max(self.max_held, len(self.held))
            self._changed.set()
        self.ended = True
        self._changed.set()

    async def until(self, count: int, timeout: float = 15.0) -> None:
        """Wait until at least ``count`` deliveries arrived; fail the test otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            if self._task.done():
                self._task.result()  # surface the consumer's exception
                pytest.fail(f"consumer ended after {len(self.received)} of {count} deliveries")
            left = deadline - loop.time()
            if left <= 0:
                pytest.fail(f"only {len(self.received)} of {count} deliveries within {timeout}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    async def settle_held(self, ack: bool = True) -> None:
        held, self.held = self.held, []
        for delivery in held:
            await (delivery.ack() if ack else delivery.nack())

    async def stop(self) -> None:
        """Cancel the consumer task (its generator ends: a consumer that goes away)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def wait_ended(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)


# -- fault injection ------------------------------------------------------------------------
async def kill_redis_clients(kit: BrokerKit) -> int:
    """CLIENT KILL every connection of this kit's brokers (named ``treadle-broker:<prefix>``)."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        clients = await admin.client_list()
        ids = [c["id"] for c in clients if c.get("name") == f"treadle-broker:{kit.namespace}"]
        for client_id in ids:
            await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        return len(ids)
    finally:
        await admin.aclose()


async def kill_postgres_backends(kit: BrokerKit) -> int:
    """pg_terminate_backend every connection of this kit (``application_name`` = namespace)."""
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            kit.namespace,
        )
        return len(rows)
    finally:
        await conn.close()


def _rabbitmqctl(*args: str) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        service_down("rabbitmqctl", "not on PATH")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        service_down("rabbitmqctl", done.stderr.strip() or done.stdout.strip())
    return done.stdout


async def kill_rabbitmq_connections(kit: BrokerKit) -> int:
    """Close this kit's AMQP connections server-side (not every connection on the node)."""
    out = await asyncio.to_thread(
        _rabbitmqctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    marker = f'{{"connection_name","treadle-broker:{kit.namespace}"}}'
    pids = [line.split("\t", 1)[0] for line in out.splitlines() if marker in line]
    for pid in pids:
        await asyncio.to_thread(_rabbitmqctl, "close_connection", pid, "treadle contract test")
    return len(pids)


class CuttableProxy:
    """A TCP relay to a service whose live connections can be cut (the listener stays up)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> int:
        """Close every relayed connection; return how many client connections there were."""
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
