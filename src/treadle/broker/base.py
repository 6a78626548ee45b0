"""The ``Broker`` protocol.

A message body is a short string (a task id, or a run id on the coordinator's queue). Losing or
duplicating a message is harmless: claims are compare-and-set in the store, and the coordinator
re-rings doorbells that were not answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

#: Queue the coordinators consume: bodies are run ids whose graph must be advanced.
COORDINATOR_QUEUE = "_treadle.advance"


@runtime_checkable
class Delivery(Protocol):
    """One received message."""

    body: str

    async def ack(self) -> None: ...

    async def nack(self) -> None:
        """Give the message back for another consumer."""


@runtime_checkable
class Broker(Protocol):
    """A work-queue transport. Implementations: memory, PostgreSQL, Redis, RabbitMQ, NATS."""

    url: str

    async def connect(self) -> None:
        """Open connections; raise :class:`~treadle.errors.ServiceUnavailable` if unreachable."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~treadle.errors.ServiceUnavailable` (naming the broker and the reason)
        when the server does not answer now; readiness probes call it."""

    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        """Enqueue each body on ``queue`` (created on first use)."""

    def consume(self, queue: str, prefetch: int) -> AsyncIterator[Delivery]:
        """Yield deliveries from ``queue`` forever, at most ``prefetch`` unacknowledged."""
        ...
