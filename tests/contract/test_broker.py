"""The Broker contract, run against every implementation on its real service.

What the engine relies on: every published body is delivered (at least once), a nack or a
consumer going away gives messages back, a consumer never holds more than ``prefetch``
unacknowledged, queues do not leak into each other, close() ends consumers cleanly, and a
dropped connection costs a reconnect, not a message.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.contract import broker_fixtures
from tests.contract.broker_fixtures import (
    BrokerKit,
    Collector,
    kill_postgres_backends,
    kill_rabbitmq_connections,
    kill_redis_clients,
)
from treadle.broker._common import HeldDelivery, ack_all
from treadle.broker.base import COORDINATOR_QUEUE, Broker, Delivery

pytestmark = pytest.mark.services

# The fixtures live in broker_fixtures.py (the store suite owns this folder's conftest.py).
kit = broker_fixtures.kit
timeout_kit = broker_fixtures.timeout_kit


def bodies(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


async def assert_quiet(collector: Collector, seconds: float) -> None:
    """Nothing more arrives within ``seconds`` (acked messages stay gone)."""
    before = len(collector.received)
    await asyncio.sleep(seconds)
    assert collector.received[before:] == []


async def test_round_trip(kit: BrokerKit) -> None:
    broker = await kit.open()
    queue = kit.queue()
    assert isinstance(broker, Broker)
    await broker.publish(queue, ["a", "b", "c"])
    collector = Collector(broker, queue, prefetch=10)
    await collector.until(3)
    assert sorted(collector.received) == ["a", "b", "c"]
    # Acked messages must not come back, even after the (1 s) visibility timeout.
    await assert_quiet(collector, 2.0)
    await collector.stop()


async def test_coordinator_queue_name_works(kit: BrokerKit) -> None:
    broker = await kit.open()
    kit.queues.add(COORDINATOR_QUEUE)
    await broker.publish(COORDINATOR_QUEUE, ["run-1"])
    collector = Collector(broker, COORDINATOR_QUEUE, prefetch=1)
    await collector.until(1)
    assert collector.received == ["run-1"]
    await collector.stop()


async def test_many_messages_two_consumers_none_lost(kit: BrokerKit) -> None:
    publisher = await kit.open()
    first, second = await kit.open(), await kit.open()
    queue = kit.queue()
    sent = bodies("m", 600)
    one = Collector(first, queue, prefetch=10)
    two = Collector(second, queue, prefetch=10)
    for start in range(0, len(sent), 50):
        await publisher.publish(queue, sent[start : start + 50])
    deadline = asyncio.get_running_loop().time() + 30
    while len(one.received) + len(two.received) < len(sent):
        assert asyncio.get_running_loop().time() < deadline, "messages lost"
        await asyncio.sleep(0.05)
    got = Counter(one.received + two.received)
    assert set(got) == set(sent)
    assert max(got.values()) == 1, "no duplicates without faults"
    if not kit.shared:  # (one event loop over in-memory queues lets the first drain it all)
        assert one.received and two.received, "competing consumers share the queue"
    await one.stop()
    await two.stop()


async def test_nack_redelivers_at_once(kit: BrokerKit) -> None:
    # A 30 s visibility timeout: seeing the body again quickly proves the nack path.
    broker = await kit.open("visibility_timeout=30")
    queue = kit.queue()
    await broker.publish(queue, ["again"])
    collector = Collector(broker, queue, prefetch=1, ack=False)
    await collector.until(1)
    await collector.settle_held(ack=False)
    await collector.until(2, timeout=5)
    assert collector.received == ["again", "again"]
    await collector.settle_held(ack=True)
    await assert_quiet(collector, 1.0)
    await collector.stop()


async def test_batched_ack_and_nack(kit: BrokerKit) -> None:
    # The engine settles a whole batch at once (ack_all / settle_many): acked ones stay gone,
    # nacked ones come back, and every slot of the window is freed.
    broker = await kit.open("visibility_timeout=30")
    queue = kit.queue()
    sent = bodies("b", 6)
    await broker.publish(queue, sent)
    collector = Collector(broker, queue, prefetch=6, ack=False)
    await collector.until(6)
    held, collector.held = collector.held, []
    await ack_all(held[:4])
    await ack_all(held[:4])  # settling twice is harmless
    rest = held[4:]
    if isinstance(rest[0], HeldDelivery):
        await type(rest[0]).settle_many(rest, False)
    else:
        for delivery in rest:
            await delivery.nack()
    await collector.until(8, timeout=5)
    assert sorted(collector.received[6:]) == sorted(d.body for d in rest)
    await ack_all(collector.held)
    await assert_quiet(collector, 1.0)
    await collector.stop()


async def test_consumer_going_away_gives_messages_back(kit: BrokerKit) -> None:
    leaving = await kit.open("visibility_timeout=30")
    queue = kit.queue()
    sent = bodies("g", 5)
    await leaving.publish(queue, sent)
    gone = Collector(leaving, queue, prefetch=5, ack=False)
    await gone.until(5)
    await gone.stop()  # its generator ends with five unacked deliveries in hand
    if not kit.shared:
        await leaving.close()
    staying = await kit.open("visibility_timeout=30")
    collector = Collector(staying, queue, prefetch=10)
    await collector.until(5, timeout=5)  # far below the 30 s timeout: given back, not expired
    assert sorted(collector.received) == sorted(sent)
    await collector.stop()


async def test_a_consumer_holding_many_gives_them_all_back_in_batches(
    kit: BrokerKit, caplog: pytest.LogCaptureFixture
) -> None:
    # A coordinator holds up to a thousand doorbells; giving them back one call each at once
    # used to exceed the Redis client's connection pool.
    # JetStream hands NAKed messages to the leaving consumer's pull request that is still open
    # on the server; those come back after the ack wait, so NATS gets a short one here.
    visibility = "visibility_timeout=4" if kit.kind == "nats" else "visibility_timeout=30"
    leaving = await kit.open(visibility)
    queue = kit.queue()
    sent = bodies("m", 600)
    await leaving.publish(queue, sent)
    gone = Collector(leaving, queue, prefetch=1000, ack=False)
    await gone.until(600, timeout=30)
    with caplog.at_level(logging.WARNING):
        await gone.stop()
        if not kit.shared:
            await leaving.close()
    assert [r.getMessage() for r in caplog.records if "failed" in r.getMessage()] == []
    staying = await kit.open(visibility)
    collector = Collector(staying, queue, prefetch=1000)
    # Below the 30 s timeout: given back, not expired. Delivery is at least once (NATS may
    # hand a message to both), so the check is that every message came back.
    await collector.until(600, timeout=20)
    while len(set(collector.received)) < 600:
        await collector.until(len(collector.received) + 1, timeout=20)
    assert set(collector.received) == set(sent)
    await collector.stop()


async def test_dead_consumer_messages_return_after_visibility_timeout(
    timeout_kit: BrokerKit,
) -> None:
    stuck = await timeout_kit.open()
    queue = timeout_kit.queue()
    sent = bodies("d", 3)
    await stuck.publish(queue, sent)
    frozen = Collector(stuck, queue, prefetch=3, ack=False)
    await frozen.until(3)  # holds all three, never acks, never leaves: a hung process
    rescuer = await timeout_kit.open()
    collector = Collector(rescuer, queue, prefetch=10, ack=False)
    await collector.until(3, timeout=10)
    assert sorted(collector.received) == sorted(sent)
    # The hung consumer's late nacks must not release what the rescuer now holds.
    await frozen.settle_held(ack=False)
    await stuck.close()
    await collector.settle_held(ack=True)
    await assert_quiet(collector, 2.5)
    await collector.stop()


async def test_prefetch_bound_is_honoured(kit: BrokerKit) -> None:
    broker = await kit.open("visibility_timeout=30")
    queue = kit.queue()
    sent = bodies("p", 12)
    await broker.publish(queue, sent)
    collector = Collector(broker, queue, prefetch=3, ack=False)
    await collector.until(3)
    await asyncio.sleep(1.0)
    assert len(collector.received) == 3, "a fourth delivery while three are unacked"
    first = collector.held.pop(0)
    await first.ack()
    await collector.until(4)
    await asyncio.sleep(0.5)
    assert len(collector.received) == 4
    while len(collector.received) < len(sent):
        await collector.settle_held()
        await collector.until(min(len(sent), len(collector.received) + 1))
    await collector.settle_held()
    assert sorted(collector.received) == sorted(sent)
    assert collector.max_held <= 3
    await collector.stop()


async def test_queues_are_isolated(kit: BrokerKit) -> None:
    broker = await kit.open()
    base = kit.queue("iso")
    # Names that would collide under careless escaping (dots, wildcards, our own escape).
    names = [f"{base}.a", f"{base}_2ea", f"{base}.*", f"{base}>"]
    for name in names:
        kit.queues.add(name)
        await broker.publish(name, [f"for {name}"])
    collectors = [Collector(broker, name, prefetch=5) for name in names]
    for collector in collectors:
        await collector.until(1)
    await asyncio.sleep(1.0)
    for name, collector in zip(names, collectors, strict=True):
        assert collector.received == [f"for {name}"]
        await collector.stop()


async def test_close_ends_consumers_and_is_idempotent(kit: BrokerKit) -> None:
    broker = await kit.open()
    queue = kit.queue()
    await broker.publish(queue, ["only"])
    collector = Collector(broker, queue, prefetch=2)
    await collector.until(1)
    await broker.close()
    await collector.wait_ended(timeout=5)  # a waiting consumer ends, without an error
    assert collector.ended
    await broker.close()


async def test_delivery_protocol(kit: BrokerKit) -> None:
    broker = await kit.open()
    queue = kit.queue()
    await broker.publish(queue, ["x"])
    stream = broker.consume(queue, 1)
    delivery = await anext(stream)
    assert isinstance(delivery, Delivery)
    assert delivery.body == "x"
    await delivery.ack()
    await delivery.ack()  # settling twice is harmless
    await delivery.nack()
    await stream.aclose()  # type: ignore[attr-defined]


# -- reconnects -----------------------------------------------------------------------------
KILLERS = {
    "postgres": kill_postgres_backends,
    "redis": kill_redis_clients,
    "rabbitmq": kill_rabbitmq_connections,
}


@pytest.mark.slow
@pytest.mark.parametrize("kit", sorted(KILLERS), indirect=True)
async def test_reconnect_after_connections_are_killed(
    kit: BrokerKit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="treadle.broker")
    publisher = await kit.open()
    consumer = await kit.open()
    queue = kit.queue()
    before, after = bodies("before", 50), bodies("after", 50)
    collector = Collector(consumer, queue, prefetch=10)
    await publisher.publish(queue, before)
    await collector.until(len(before))

    killed = await KILLERS[kit.kind](kit)
    assert killed >= 2, f"expected to kill the kit's connections, killed {killed}"

    await publisher.publish(queue, after)  # retries through the reconnect
    deadline = asyncio.get_running_loop().time() + 30
    while not set(before + after) <= set(collector.received):
        assert asyncio.get_running_loop().time() < deadline, "messages lost after reconnect"
        await asyncio.sleep(0.1)
    await collector.stop()

    ours = [r for r in caplog.records if r.name.startswith("treadle.broker")]
    assert any(r.levelno == logging.WARNING for r in ours), "each failure is logged"
    assert not any(r.exc_info for r in ours), "one line per failure, no tracebacks"


@pytest.mark.slow
async def test_nats_reconnects_after_its_connections_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="treadle.broker")
    target = urlsplit(broker_fixtures.NATS_URL)
    proxy = broker_fixtures.CuttableProxy(target.hostname or "127.0.0.1", target.port or 4222)
    await proxy.start()
    suffix = uuid.uuid4().hex[:10]
    url = broker_fixtures.kit_url("nats", suffix).replace(
        f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}"
    )
    kit = BrokerKit("nats", url, suffix)
    try:
        publisher, consumer = await kit.open(), await kit.open()
        queue = kit.queue()
        before, after = bodies("before", 50), bodies("after", 50)
        collector = Collector(consumer, queue, prefetch=10)
        await publisher.publish(queue, before)
        await collector.until(len(before))
        assert proxy.cut() >= 2
        await publisher.publish(queue, after)
        deadline = asyncio.get_running_loop().time() + 30
        while not set(before + after) <= set(collector.received):
            assert asyncio.get_running_loop().time() < deadline, "messages lost after reconnect"
            await asyncio.sleep(0.1)
        await collector.stop()
    finally:
        await kit.cleanup()
        await proxy.stop()
    ours = [r for r in caplog.records if r.name.startswith("treadle.broker")]
    assert any(r.levelno == logging.WARNING for r in ours), "the disconnect is logged"
    assert not any(r.exc_info for r in ours), "one line per failure, no tracebacks"
