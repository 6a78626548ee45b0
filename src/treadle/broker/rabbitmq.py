"""RabbitMQ broker (aio-pika): durable queues, persistent messages, publisher confirms.

``amqp://guest:guest@host:5672/vhost?prefix=treadle``

Queue ``q`` lives in the AMQP queue ``{prefix}.q``. Consumers ack manually and ``basic.qos``
limits each to ``prefetch`` unacknowledged messages, so the server enforces the window. RabbitMQ
itself redelivers what a closed channel held, so no visibility timeout is needed here.

The connection is our own (not ``connect_robust``): one loop reconnects with backoff, logs each
failure once, re-declares queues and re-subscribes consumers, and nothing else retries behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

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

_OPTIONS = COMMON_OPTIONS | {"prefix"}
_CHUNK = 500  # publishes in flight at once, each awaiting its confirm


def _transient(exc: BaseException) -> bool:
    return isinstance(
        exc,
        aiormq.exceptions.AMQPError
        | aiormq.exceptions.ChannelInvalidStateError
        | OSError
        | TimeoutError,
    )


def amqp_name(queue: str) -> str:
    """``queue`` within what AMQP clients accept in a queue name (letters, digits, ``-_.:``).

    Other characters become ``:hh`` (UTF-8 bytes in hex); ``:`` is escaped too, so two queue
    names never map to the same AMQP queue.
    """
    out: list[str] = []
    for char in queue:
        if char.isascii() and (char.isalnum() or char in "-_."):
            out.append(char)
        else:
            out.extend(f":{byte:02x}" for byte in char.encode())
    return "".join(out)


class RabbitMQDelivery(HeldDelivery):
    __slots__ = ("_channel", "_message")

    def __init__(
        self,
        message: AbstractIncomingMessage,
        channel: AbstractChannel,
        window: Window,
        held: set[HeldDelivery],
    ) -> None:
        super().__init__(message.body.decode(), window, held)
        self._message = message
        self._channel = channel

    async def _settle(self, ack: bool) -> None:
        # Delivery tags belong to their channel: once it is gone, RabbitMQ has already put
        # the message back, and there is nothing left to ack or nack.
        if self._channel.is_closed:
            raise ServiceUnavailable("its channel closed, so RabbitMQ requeued it")
        try:
            if ack:
                await self._message.ack()
            else:
                await self._message.nack(requeue=True)
        except Exception as exc:
            if not _transient(exc):
                raise
            raise ServiceUnavailable(one_line(exc)) from exc


class RabbitMQBroker:
    """Work queues on a RabbitMQ server."""

    def __init__(self, url: str) -> None:
        self.url = url
        opts = UrlOptions.parse(url, _OPTIONS)
        self._driver_url = opts.driver_url
        self._prefix = opts.name("prefix", "treadle")
        self._connect_timeout = opts.number("connect_timeout", 5.0, 0.1)
        self._publish_timeout = opts.number("publish_timeout", 30.0, 0.1)
        self._backoff = Backoff(
            opts.number("retry_initial", 0.1, 0.001), opts.number("retry_max", 5.0, 0.01)
        )
        self._conn: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()
        self._inboxes: set[asyncio.Queue[AbstractIncomingMessage | None]] = set()
        self._consumers: dict[Window, set[HeldDelivery]] = {}
        self._stopping = False
        self._closed = False

    def queue_name(self, queue: str) -> str:
        """The AMQP queue that carries ``queue`` (see :func:`amqp_name`)."""
        return f"{self._prefix}.{amqp_name(queue)}"

    # -- connection --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection; raise ServiceUnavailable when the server cannot be reached."""
        try:
            await self._connection()
        except Exception as exc:
            if not _transient(exc):
                raise
            raise ServiceUnavailable(
                f"RabbitMQ broker at {redact(self._driver_url)} is unreachable: {one_line(exc)}"
            ) from exc

    @staticmethod
    def _usable(conn: AbstractConnection | None) -> bool:
        # aio-pika leaves is_closed False when the server drops the connection; the
        # ``connected`` event is what it clears then.
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def _connection(self) -> AbstractConnection:
        if self._usable(self._conn):
            assert self._conn is not None
            return self._conn
        async with self._lock:
            if self._closed:
                raise Closed("RabbitMQ broker is closed")
            if self._usable(self._conn):
                assert self._conn is not None
                return self._conn
            stale, self._conn = self._conn, None
            if stale is not None:
                log.warning("RabbitMQ broker: connection lost; reconnecting")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stale.close(), 2.0)
            self._conn = await aio_pika.connect(
                self._driver_url,
                timeout=self._connect_timeout,
                client_properties={"connection_name": f"treadle-broker:{self._prefix}"},
            )
            self._publisher = None
            self._declared.clear()
            return self._conn

    async def ping(self) -> None:
        """Check the connection is up, reconnecting once if it dropped (no retry loop)."""
        try:
            await asyncio.wait_for(self._connection(), self._connect_timeout)
        except Closed:
            raise
        except Exception as exc:
            if not _transient(exc):
                raise
            raise ServiceUnavailable(
                f"RabbitMQ broker at {redact(self._driver_url)} does not answer: {one_line(exc)}"
            ) from exc

    async def _recover(self) -> None:
        # Drop what may be half-broken; the next operation reconnects through _connection().
        publisher, self._publisher = self._publisher, None
        self._declared.clear()
        if publisher is not None and not publisher.is_closed:
            with contextlib.suppress(Exception):
                await publisher.close()

    async def _run(self, what: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        return await retry(
            call,
            what=f"RabbitMQ broker: {what}",
            logger=log,
            transient=_transient,
            recover=self._recover,
            backoff=self._backoff,
            is_closed=lambda: self._closed,
            deadline=deadline,
        )

    async def close(self) -> None:
        """Stop consumers, give back held messages, and close the connection."""
        if self._closed:
            return
        self._stopping = True
        for inbox in self._inboxes:
            inbox.put_nowait(None)
        await release_all(set().union(*self._consumers.values()), timeout=2.0)
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5.0)

    # -- publish -----------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        """Publish persistent messages and wait for every confirm."""
        check_queue(queue)
        if not bodies:
            return
        name = self.queue_name(queue)

        async def send() -> None:
            channel = await self._publishing_channel()
            if name not in self._declared:
                await channel.declare_queue(name, durable=True)
                self._declared.add(name)
            exchange = channel.default_exchange
            for start in range(0, len(bodies), _CHUNK):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                            ),
                            routing_key=name,
                            mandatory=True,  # a vanished queue raises instead of dropping
                        )
                        for body in bodies[start : start + _CHUNK]
                    )
                )

        await self._run(f"publish to {name!r}", send, time.monotonic() + self._publish_timeout)

    async def _publishing_channel(self) -> AbstractChannel:
        conn = await self._connection()
        if self._publisher is None or self._publisher.is_closed:
            self._publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
            self._declared.clear()
        return self._publisher

    # -- consume -----------------------------------------------------------------------------
    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[RabbitMQDelivery]:
        """Subscribe with ``basic.qos(prefetch)``; re-subscribe after every reconnect."""
        check_queue(queue)
        name = self.queue_name(queue)
        window = Window(prefetch)
        held: set[HeldDelivery] = set()
        self._consumers[window] = held
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._inboxes.add(inbox)
        channel: AbstractChannel | None = None
        try:
            while not self._stopping:
                try:
                    channel = await self._run(
                        f"subscribe to {name!r}", lambda: self._subscribe(name, window, inbox), None
                    )
                except Closed:
                    break
                while not self._stopping:
                    message = await inbox.get()
                    check_cancelled()
                    if message is None:
                        if not self._stopping:
                            log.warning(
                                "RabbitMQ broker: channel of %r closed; resubscribing", name
                            )
                        break  # the channel closed (reconnect) or the broker is closing
                    window.take(1)
                    yield RabbitMQDelivery(message, channel, window, held)
                # Messages still buffered belong to a dead channel; RabbitMQ requeued them.
                while not inbox.empty():
                    inbox.get_nowait()
        finally:
            self._inboxes.discard(inbox)
            self._consumers.pop(window, None)
            await release_all(held, timeout=2.0)
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), 2.0)

    async def _subscribe(
        self,
        name: str,
        window: Window,
        inbox: asyncio.Queue[AbstractIncomingMessage | None],
    ) -> AbstractChannel:
        conn = await self._connection()
        channel = await conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=window.size)
            amqp_queue = await channel.declare_queue(name, durable=True)

            def closed(*_args: Any) -> None:
                inbox.put_nowait(None)

            channel.close_callbacks.add(closed)
            await amqp_queue.consume(inbox.put, no_ack=False)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        return channel
