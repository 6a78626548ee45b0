"""Redis broker: one stream per queue, read through a consumer group.

``redis://host:6379/0?prefix=treadle&visibility_timeout=60&poll_interval=1``

XADD publishes, XREADGROUP hands new entries to one consumer, and an entry stays in the group's
pending list until acked. Entries pending longer than ``visibility_timeout`` (their consumer
died) are taken over with XAUTOCLAIM. Ack and nack run as one Lua script each, fenced on the
entry still belonging to this consumer, and delete the entry so streams stay small; a nack
re-adds the body at the tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from treadle.broker._common import (
    COMMON_OPTIONS,
    Backoff,
    Closed,
    HeldDelivery,
    UrlOptions,
    Window,
    check_cancelled,
    check_queue,
    one_line,
    redact,
    release_all,
    retry,
)
from treadle.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_OPTIONS = COMMON_OPTIONS | {"prefix", "poll_interval"}
_GROUP = "treadle"
_FIELD = "b"

# KEYS[1] stream; ARGV: group, consumer, entry id, "ack" | "nack".
_SETTLE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] == 'nack' then
  local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
  if #e > 0 then redis.call('XADD', KEYS[1], '*', unpack(e[1][2])) end
end
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"""

# The same for many entries of one consumer: KEYS[1] stream; ARGV: group, consumer,
# "ack" | "nack", entry ids... Entries no longer held by this consumer are left alone.
_SETTLE_MANY = """
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
    if ARGV[3] == 'nack' then
      local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
      if #e > 0 then redis.call('XADD', KEYS[1], '*', unpack(e[1][2])) end
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError)


class RedisDelivery(HeldDelivery):
    __slots__ = ("_broker", "_consumer", "_entry", "_key")

    def __init__(
        self,
        broker: RedisBroker,
        key: str,
        consumer: str,
        entry: str,
        body: str,
        window: Window,
        held: set[HeldDelivery],
    ) -> None:
        super().__init__(body, window, held)
        self._broker = broker
        self._key = key
        self._consumer = consumer
        self._entry = entry

    async def _settle(self, ack: bool) -> None:
        await self._broker._settle(self._key, self._consumer, self._entry, ack)

    @classmethod
    async def settle_many(cls, deliveries: Sequence[HeldDelivery], ack: bool) -> None:
        """One script call per (broker, stream, consumer) instead of one per entry."""
        groups: dict[tuple[int, str, str], list[RedisDelivery]] = {}
        for delivery in deliveries:
            assert isinstance(delivery, RedisDelivery)
            key = (id(delivery._broker), delivery._key, delivery._consumer)
            groups.setdefault(key, []).append(delivery)
        for group in groups.values():
            first = group[0]

            async def send(todo: list[HeldDelivery], first: RedisDelivery = first) -> None:
                entries = [d._entry for d in todo if isinstance(d, RedisDelivery)]
                await first._broker._settle_many(first._key, first._consumer, entries, ack)

            await cls._settle_batch(group, ack, send)


class RedisBroker:
    """Work queues as Redis streams under ``{prefix}:q:``."""

    def __init__(self, url: str) -> None:
        self.url = url
        opts = UrlOptions.parse(url, _OPTIONS)
        self._driver_url = opts.driver_url
        self._prefix = opts.name("prefix", "treadle")
        self._visibility = opts.number("visibility_timeout", 60.0, 0.05)
        self._poll = opts.number("poll_interval", 1.0, 0.01)
        self._connect_timeout = opts.number("connect_timeout", 5.0, 0.1)
        self._publish_timeout = opts.number("publish_timeout", 30.0, 0.1)
        self._backoff = Backoff(
            opts.number("retry_initial", 0.1, 0.001), opts.number("retry_max", 5.0, 0.01)
        )
        # Take over a dead consumer's entries a few times per visibility timeout.
        self._claim_every = max(0.05, min(5.0, self._visibility / 2))
        self._client: aioredis.Redis | None = None
        self._settle_script: Any = None
        self._settle_many_script: Any = None
        self._consumers: dict[Window, set[HeldDelivery]] = {}
        self._stopping = False
        self._closed = False

    def key(self, queue: str) -> str:
        """The stream holding ``queue``."""
        return f"{self._prefix}:q:{queue}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def connect(self) -> None:
        """Create the client and check the server answers."""
        try:
            client: aioredis.Redis = aioredis.Redis.from_url(
                self._driver_url,
                decode_responses=True,
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=max(10.0, self._poll + 5.0),
                client_name=f"treadle-broker:{self._prefix}",
                # One retry loop (ours) owns backoff and logging.
                retry=Retry(NoBackoff(), 0),
            )
            await asyncio.wait_for(client.ping(), self._connect_timeout)
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            raise ServiceUnavailable(
                f"Redis broker at {redact(self._driver_url)} is unreachable: {one_line(exc)}"
            ) from exc
        self._client = client
        self._settle_script = client.register_script(_SETTLE)
        self._settle_many_script = client.register_script(_SETTLE_MANY)

    async def close(self) -> None:
        """Stop consumers, give back held entries, and close the connection pool."""
        if self._closed:
            return
        self._stopping = True
        for window in self._consumers:
            window.wake()
        if self._client is not None:
            await release_all(set().union(*self._consumers.values()), timeout=2.0)
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def ping(self) -> None:
        """``PING`` the server, bounded by the connect timeout."""
        try:
            await asyncio.wait_for(self._redis().ping(), self._connect_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ServiceUnavailable(
                f"Redis broker at {redact(self._driver_url)} does not answer: {one_line(exc)}"
            ) from exc

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise Closed("Redis broker is not connected")
        return self._client

    async def _run(self, what: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        async def recover() -> None:
            return None  # the pool replaces broken connections on the next command

        return await retry(
            call,
            what=f"Redis broker: {what}",
            logger=log,
            transient=_transient,
            recover=recover,
            backoff=self._backoff,
            is_closed=lambda: self._closed or self._client is None,
            deadline=deadline,
        )

    # -- publish -----------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        """XADD every body in one pipelined round trip."""
        check_queue(queue)
        if not bodies:
            return
        key = self.key(queue)

        async def send() -> None:
            pipe = self._redis().pipeline(transaction=False)
            for body in bodies:
                pipe.xadd(key, {_FIELD: body})
            await pipe.execute()

        await self._run(f"publish to {queue!r}", send, time.monotonic() + self._publish_timeout)

    # -- consume -----------------------------------------------------------------------------
    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[RedisDelivery]:
        """Read new entries (and take over stale ones) up to the free part of the window."""
        check_queue(queue)
        key = self.key(queue)
        consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        window = Window(prefetch)
        held: set[HeldDelivery] = set()
        self._consumers[window] = held
        claim = _Claimer()
        try:
            await self._ensure_group(key)
            while not self._stopping:
                free = await window.wait_free()
                if self._stopping:
                    break
                if not free:
                    continue
                entries = await self._fetch(key, consumer, free, claim)
                check_cancelled()
                window.take(len(entries))
                batch = [
                    RedisDelivery(self, key, consumer, entry, body, window, held)
                    for entry, body in entries
                ]
                for delivery in batch:
                    if self._stopping:
                        break  # the rest of the batch is released below
                    yield delivery
        except Closed:
            pass
        finally:
            self._consumers.pop(window, None)
            await release_all(held, timeout=2.0)
            await self._forget_consumer(key, consumer)

    async def _ensure_group(self, key: str) -> None:
        async def create() -> None:
            try:
                # Id 0: entries published before the first consumer are delivered too.
                await self._redis().xgroup_create(key, _GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._run(f"create group on {key!r}", create, None)

    async def _fetch(
        self, key: str, consumer: str, count: int, claim: _Claimer
    ) -> list[tuple[str, str]]:
        """Entries for this consumer: stale ones first, then new ones (blocking briefly)."""
        entries: list[tuple[str, str]] = []
        if claim.due(self._claim_every):
            entries = await self._claim(key, consumer, count, claim)
        if len(entries) < count:
            block = None if entries else max(1, int(min(self._poll, self._claim_every) * 1000))
            entries += await self._read(key, consumer, count - len(entries), block)
        return entries

    async def _read(
        self, key: str, consumer: str, count: int, block: int | None
    ) -> list[tuple[str, str]]:
        async def read() -> Any:
            try:
                return await self._redis().xreadgroup(
                    _GROUP, consumer, {key: ">"}, count=count, block=block
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream vanished (a server restart without persistence): start over.
                await self._ensure_group(key)
                return []

        reply = await self._run(f"read {key!r}", read, None)
        out: list[tuple[str, str]] = []
        for _stream, items in reply or []:
            out.extend(_bodies(items))
        return out

    async def _claim(
        self, key: str, consumer: str, count: int, claim: _Claimer
    ) -> list[tuple[str, str]]:
        async def autoclaim() -> Any:
            try:
                return await self._redis().xautoclaim(
                    key,
                    _GROUP,
                    consumer,
                    int(self._visibility * 1000),
                    start_id=claim.cursor,
                    count=count,
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group(key)
                return ["0-0", []]

        reply = await self._run(f"claim stale entries of {key!r}", autoclaim, None)
        claim.cursor = str(reply[0])
        entries = _bodies(reply[1])
        if entries:
            log.info("Redis broker: took over %d stale entries of %s", len(entries), key)
        return entries

    async def _settle(self, key: str, consumer: str, entry: str, ack: bool) -> None:
        script = self._settle_script
        await self._run(
            "ack" if ack else "nack",
            lambda: script(
                keys=[key],
                args=[_GROUP, consumer, entry, "ack" if ack else "nack"],
                client=self._redis(),
            ),
            time.monotonic() + min(10.0, self._publish_timeout),
        )

    async def _settle_many(self, key: str, consumer: str, entries: list[str], ack: bool) -> None:
        script = self._settle_many_script
        mode = "ack" if ack else "nack"
        for start in range(0, len(entries), 500):
            chunk = entries[start : start + 500]
            await self._run(
                mode,
                lambda chunk=chunk: script(  # type: ignore[misc]
                    keys=[key], args=[_GROUP, consumer, mode, *chunk], client=self._redis()
                ),
                time.monotonic() + min(10.0, self._publish_timeout),
            )

    async def _forget_consumer(self, key: str, consumer: str) -> None:
        """Drop this consumer from the group once it holds nothing (they pile up otherwise)."""
        if self._client is None:
            return
        client = self._client
        try:
            pending = await asyncio.wait_for(
                client.xpending_range(key, _GROUP, "-", "+", 1, consumername=consumer), 2.0
            )
            if not pending:
                await asyncio.wait_for(client.xgroup_delconsumer(key, _GROUP, consumer), 2.0)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("Redis broker: could not drop consumer %s: %s", consumer, one_line(exc))


class _Claimer:
    """When to look for stale entries, and where the last XAUTOCLAIM scan stopped."""

    def __init__(self) -> None:
        self.cursor = "0-0"
        self._last = 0.0

    def due(self, every: float) -> bool:
        now = time.monotonic()
        if now - self._last < every:
            return False
        self._last = now
        return True


def _bodies(items: Any) -> list[tuple[str, str]]:
    """``(entry id, body)`` pairs; entries deleted meanwhile (no fields) are skipped."""
    out: list[tuple[str, str]] = []
    for entry, fields in items or []:
        if fields and _FIELD in fields:
            out.append((str(entry), str(fields[_FIELD])))
    return out
