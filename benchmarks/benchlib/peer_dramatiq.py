"""Dramatiq broker and actors for the benchmark, configured from BENCH_* variables.

Settings (stated in the README): default middleware (acks after the actor returns), prefetch
left at Dramatiq's default (2 x threads per process), no retries for the no-op, and the
GroupCallbacks middleware over a Redis rate-limiter backend (keys prefixed per run) for group
completion callbacks.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.middleware import GroupCallbacks
from dramatiq.rate_limits.backends import RedisBackend

from benchlib import probe


class PrefixedBackend(RedisBackend):
    """Dramatiq's Redis rate-limiter backend with every key under the run's prefix."""

    def __init__(self, prefix: str, url: str) -> None:
        super().__init__(url=url)
        self.prefix = f"{prefix}:"

    def add(self, key: str, *args: Any) -> Any:
        return super().add(self.prefix + key, *args)

    def incr(self, key: str, *args: Any) -> Any:
        return super().incr(self.prefix + key, *args)

    def decr(self, key: str, *args: Any) -> Any:
        return super().decr(self.prefix + key, *args)

    def incr_and_sum(self, key: str, keys: Any, *args: Any) -> Any:
        return super().incr_and_sum(self.prefix + key, keys, *args)

    def wait(self, key: str, *args: Any) -> Any:
        return super().wait(self.prefix + key, *args)

    def wait_notify(self, key: str, *args: Any) -> Any:
        return super().wait_notify(self.prefix + key, *args)


def make_broker(prefix: str, broker_url: str, backend_url: str) -> dramatiq.Broker:
    if broker_url.startswith("redis"):
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(url=broker_url, namespace=prefix)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=broker_url)
    broker.add_middleware(GroupCallbacks(PrefixedBackend(prefix, backend_url)))
    return broker


PREFIX = os.environ.get("BENCH_PREFIX", "bench")
broker = make_broker(
    PREFIX,
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11"),
    os.environ.get("BENCH_BACKEND_URL", "redis://127.0.0.1:6379/11"),
)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", queue_name=PREFIX, max_retries=0)
def noop(tag: str, submitted: float = 0.0) -> None:
    probe.send(tag, submitted)


@dramatiq.actor(actor_name="fan_root", queue_name=PREFIX, max_retries=0)
def fan_root(tag: str, width: int) -> None:
    """The fan-out root: runs, then sends ``width`` no-ops with a completion callback."""
    probe.send(tag)
    group = dramatiq.group(noop.message(f"{tag}.{i}") for i in range(width))
    group.add_completion_callback(noop.message(f"{tag}.join"))
    group.run()
