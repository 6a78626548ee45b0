"""Publish and consume N messages through each broker; print messages per second.

    PYTHONPATH=src python benchmarks/broker_roundtrip.py [--count 5000] [--batch 100]
        [--prefetch 100] [--only redis,nats]

One process, one publisher and one consumer per broker, bodies shaped like task ids, every
delivery acked on its own (as a worker does). Each run uses a fresh namespace and removes it.
A broker whose service is down is reported and skipped. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from treadle.broker.base import Broker
from treadle.broker.factory import open_broker
from treadle.errors import ServiceUnavailable

URLS = {
    "memory": "memory://",
    "postgres": os.environ.get(
        "TREADLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "redis": os.environ.get("TREADLE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("TREADLE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("TREADLE_TEST_NATS", "nats://127.0.0.1:4222"),
}


def isolated(kind: str, base: str, name: str) -> str:
    option = {"postgres": "schema", "redis": "prefix", "rabbitmq": "prefix", "nats": "prefix"}
    if kind not in option:
        return base
    return base + ("&" if "?" in base else "?") + f"{option[kind]}={name}"


async def roundtrip(
    broker: Broker, queue: str, count: int, batch: int, prefetch: int
) -> tuple[float, float]:
    bodies = [uuid.uuid4().hex for _ in range(count)]
    started = time.perf_counter()
    for start in range(0, count, batch):
        await broker.publish(queue, bodies[start : start + batch])
    published = time.perf_counter()
    seen = 0
    stream = broker.consume(queue, prefetch)
    async for delivery in stream:
        await delivery.ack()
        seen += 1
        if seen == count:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    consumed = time.perf_counter()
    return published - started, consumed - published


async def drop(kind: str, base: str, name: str, queue: str) -> None:
    """Remove the benchmark's namespace (schema, keys, queues, stream)."""
    if kind == "postgres":
        import asyncpg

        conn = await asyncpg.connect(base)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()
    elif kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(base)
        keys = [k async for k in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif kind == "rabbitmq":
        import aio_pika

        from treadle.broker.rabbitmq import amqp_name

        conn = await aio_pika.connect(base)
        async with conn:
            channel = await conn.channel()
            await channel.queue_delete(f"{name}.{amqp_name(queue)}")
    elif kind == "nats":
        import nats

        nc = await nats.connect(base)
        await nc.jetstream().delete_stream(name)
        await nc.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--only", default=",".join(URLS))
    args = parser.parse_args()

    print(f"{args.count} messages, publish batches of {args.batch}, prefetch {args.prefetch}")
    print(f"{'broker':<10}{'publish/s':>12}{'consume/s':>12}{'round trip/s':>14}")
    for kind in args.only.split(","):
        name = f"bench_{uuid.uuid4().hex[:8]}"
        broker = open_broker(isolated(kind, URLS[kind], name))
        try:
            await broker.connect()
        except ServiceUnavailable as exc:
            print(f"{kind:<10}  skipped: {exc.message}")
            continue
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            pub, con = await roundtrip(broker, queue, args.count, args.batch, args.prefetch)
        finally:
            await broker.close()
            await drop(kind, URLS[kind], name, queue)
        total = args.count / (pub + con)
        print(f"{kind:<10}{args.count / pub:>12,.0f}{args.count / con:>12,.0f}{total:>14,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
