"""In-process broker for the embedded mode and unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class MemoryDelivery:
    body: str
    _queue: asyncio.Queue[str | None] = field(repr=False)
    _slots: asyncio.Semaphore = field(repr=False)
    _held: set[MemoryDelivery] = field(repr=False, default_factory=set)
    _done: bool = False

    def __post_init__(self) -> None:
        self._held.add(self)

    async def ack(self) -> None:
        if not self._done:
            self._done = True
            self._held.discard(self)
            self._slots.release()

    async def nack(self) -> None:
        if not self._done:
            self._done = True
            self._held.discard(self)
            self._slots.release()
            self._queue.put_nowait(self.body)


class MemoryBroker:
    """Queues held in this process (``memory://``); nothing survives a restart, by design."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._queues: dict[str, asyncio.Queue[str | None]] = {}
        self._consumers: dict[asyncio.Queue[str | None], int] = {}
        self._closed = False

    def _queue(self, name: str) -> asyncio.Queue[str | None]:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = asyncio.Queue()
        return queue

    async def connect(self) -> None:
        return None

    async def ping(self) -> None:
        return None  # in-process: it answers while this process runs

    async def close(self) -> None:
        # Wake every waiting consumer so its generator ends (None is the stop marker).
        self._closed = True
        for queue in self._queues.values():
            for _ in range(self._consumers.get(queue, 0)):
                queue.put_nowait(None)
        self._queues.clear()

    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        target = self._queue(queue)
        for body in bodies:
            target.put_nowait(body)

    def depth(self, queue: str) -> int:
        return self._queue(queue).qsize()

    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[MemoryDelivery]:
        source = self._queue(queue)
        slots = asyncio.Semaphore(max(1, prefetch))
        held: set[MemoryDelivery] = set()
        self._consumers[source] = self._consumers.get(source, 0) + 1
        try:
            while not self._closed:
                await slots.acquire()
                body = await source.get()
                if body is None:
                    return
                yield MemoryDelivery(body, source, slots, held)
        finally:
            self._consumers[source] -= 1
            # A consumer that goes away gives back what it held, like a closed AMQP channel.
            if not self._closed:
                for delivery in list(held):
                    await delivery.nack()
