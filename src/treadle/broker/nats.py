"""NATS JetStream broker: one work-queue stream, one durable pull consumer per queue.

``nats://host:4222?prefix=treadle&visibility_timeout=60&poll_interval=1``

The stream ``{prefix}`` holds subjects ``{prefix}.q.<queue>``; work-queue retention deletes a
message once it is acked. Each queue has a durable pull consumer ``q_<queue>`` that every process
consuming the queue shares. A fetched message unacked for ``visibility_timeout`` (the consumer's
``ack_wait``) is delivered again; nack is a NAK, which redelivers at once. Queue names are escaped
into one subject token (and a valid consumer name), so dots or wildcards in them are harmless.

nats-py reconnects by itself; we give it exponential backoff with jitter and one log line per
attempt, and our own loops retry what failed while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js import api

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
_CHUNK = 500  # publishes awaiting their acks at once


def token(queue: str) -> str:
    """``queue`` as one subject token / consumer name: ``[A-Za-z0-9-]`` kept, the rest ``_hh``."""
    out: list[str] = []
    for char in queue:
        if char.isascii() and (char.isalnum() or char == "-"):
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def _no_messages(exc: BaseException) -> bool:
    return isinstance(exc, nats.errors.TimeoutError | TimeoutError)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, nats.js.errors.APIError):
        # 503 (no JetStream leader yet) and 404 (stream or consumer gone: recover recreates it)
        return exc.code in (503, 404) or isinstance(exc, nats.js.errors.NotFoundError)
    return isinstance(
        exc,
        nats.errors.ConnectionClosedError
        | nats.errors.ConnectionReconnectingError
        | nats.errors.StaleConnectionError
        | nats.errors.NoRespondersError
        | nats.errors.OutboundBufferLimitError
        | nats.errors.TimeoutError
        | nats.js.errors.NoStreamResponseError
        | OSError
        | TimeoutError,
    )


class NatsDelivery(HeldDelivery):
    __slots__ = ("_ack_wait", "_msg", "_received")

    def __init__(self, msg: Any, ack_wait: float, window: Window, held: set[HeldDelivery]) -> None:
        super().__init__(msg.data.decode(), window, held)
        self._msg = msg
        self._ack_wait = ack_wait
        self._received = time.monotonic()

    async def _settle(self, ack: bool) -> None:
        if not ack and time.monotonic() - self._received >= self._ack_wait * 0.9:
            # JetStream honours a NAK even after ack_wait handed the message to another
            # consumer, which would then get it twice. Past (nearly) ack_wait the message is
            # coming back anyway, so a late NAK is skipped.
            return
        try:
            if ack:
                await self._msg.ack()
            else:
                await self._msg.nak()
        except Exception as exc:
            if not _transient(exc):
                raise
            raise ServiceUnavailable(one_line(exc)) from exc


class NatsBroker:
    """Work queues on a NATS JetStream server."""

    def __init__(self, url: str) -> None:
        self.url = url
        opts = UrlOptions.parse(url, _OPTIONS)
        self._driver_url = opts.driver_url
        self._prefix = opts.name("prefix", "treadle")
        self._stream = self._prefix
        self._visibility = opts.number("visibility_timeout", 60.0, 0.05)
        self._poll = opts.number("poll_interval", 1.0, 0.01)
        self._connect_timeout = opts.number("connect_timeout", 5.0, 0.1)
        self._publish_timeout = opts.number("publish_timeout", 30.0, 0.1)
        self._backoff = Backoff(
            opts.number("retry_initial", 0.1, 0.001), opts.number("retry_max", 5.0, 0.01)
        )
        self._nc: Any = None
        self._js: Any = None
        self._last_error: BaseException | None = None
        self._consumers: dict[Window, set[HeldDelivery]] = {}
        self._stopping = False
        self._closed = False

    def subject(self, queue: str) -> str:
        """The subject ``queue``'s messages are published on."""
        return f"{self._prefix}.q.{token(queue)}"

    # -- connection --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect and make sure the stream exists."""
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=[self._driver_url],
                    name=f"treadle-broker:{self._prefix}",
                    connect_timeout=max(1, int(self._connect_timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._backoff.initial,
                    reconnect_to_server_handler=self._next_server,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self._connect_timeout,
            )
            self._js = self._nc.jetstream(timeout=min(5.0, self._publish_timeout))
            await asyncio.wait_for(self._ensure_stream(), self._connect_timeout)
        except Exception as exc:
            await self._drop()
            reason = exc if not isinstance(exc, TimeoutError) else (self._last_error or exc)
            raise ServiceUnavailable(
                f"NATS broker at {redact(self._driver_url)} is unreachable: {one_line(reason)}"
            ) from exc

    async def ping(self) -> None:
        """A round trip to the server (``flush``), bounded by the connect timeout."""
        nc = self._nc
        if nc is None or self._closed:
            raise ServiceUnavailable("NATS broker is not connected")
        try:
            if not nc.is_connected:
                raise ConnectionError("disconnected; reconnecting")
            await nc.flush(timeout=max(1, int(self._connect_timeout)))
        except Exception as exc:
            raise ServiceUnavailable(
                f"NATS broker at {redact(self._driver_url)} does not answer: {one_line(exc)}"
            ) from exc

    def _next_server(self, servers: list[Any], _info: Any) -> tuple[Any, float]:
        # nats-py's own wait is fixed; this gives its reconnect loop our capped, jittered one.
        attempts = servers[0].reconnects if servers else 0
        delay = Backoff(self._backoff.initial, self._backoff.cap, attempts).next_delay()
        return None, delay if attempts else 0.0

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        if self._js is not None:  # while connect() runs, its one ServiceUnavailable says it
            log.warning("NATS broker: %s", one_line(exc))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("NATS broker: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS broker: reconnected")

    async def _ensure_stream(self) -> None:
        try:
            await self._js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(
                name=self._stream,
                subjects=[f"{self._prefix}.q.>"],
                retention=api.RetentionPolicy.WORK_QUEUE,
                storage=api.StorageType.FILE,
            )

    async def _ensure_consumer(self, queue: str) -> str:
        durable = f"q_{token(queue)}"
        try:
            await self._js.consumer_info(self._stream, durable)
        except nats.js.errors.NotFoundError:
            await self._ensure_stream()
            await self._js.add_consumer(
                self._stream,
                api.ConsumerConfig(
                    durable_name=durable,
                    filter_subject=self.subject(queue),
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=self._visibility,
                    max_deliver=-1,  # poison tasks are the store's business, not ours
                    max_ack_pending=100_000,
                ),
            )
        return durable

    async def _run(self, what: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        async def recover() -> None:
            if self._nc is not None and self._nc.is_connected:
                await self._ensure_stream()

        return await retry(
            call,
            what=f"NATS broker: {what}",
            logger=log,
            transient=_transient,
            recover=recover,
            backoff=self._backoff,
            is_closed=lambda: self._closed or self._nc is None,
            deadline=deadline,
        )

    async def close(self) -> None:
        """Stop consumers, NAK held messages, and close the connection."""
        if self._closed:
            return
        self._stopping = True
        for window in self._consumers:
            window.wake()
        if self._nc is not None:
            await release_all(set().union(*self._consumers.values()), timeout=2.0)
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5.0)

    # -- publish -----------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[str]) -> None:
        """Publish to JetStream and wait for every PubAck."""
        check_queue(queue)
        if not bodies:
            return
        subject = self.subject(queue)

        async def send() -> None:
            for start in range(0, len(bodies), _CHUNK):
                await asyncio.gather(
                    *(
                        self._js.publish(subject, body.encode(), stream=self._stream)
                        for body in bodies[start : start + _CHUNK]
                    )
                )

        await self._run(f"publish to {queue!r}", send, time.monotonic() + self._publish_timeout)

    # -- consume -----------------------------------------------------------------------------
    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[NatsDelivery]:
        """Fetch up to the free part of the window, waiting at most ``poll_interval`` each."""
        check_queue(queue)
        window = Window(prefetch)
        held: set[HeldDelivery] = set()
        self._consumers[window] = held
        sub: Any = None
        try:
            sub = await self._run(f"subscribe to {queue!r}", lambda: self._bind(queue), None)
            while not self._stopping:
                free = await window.wait_free()
                if self._stopping:
                    break
                if not free:
                    continue
                msgs = await self._fetch(sub, queue, free)
                check_cancelled()
                window.take(len(msgs))
                batch = [NatsDelivery(msg, self._visibility, window, held) for msg in msgs]
                for delivery in batch:
                    if self._stopping:
                        break  # the rest of the batch is released below
                    yield delivery
        except Closed:
            pass
        finally:
            self._consumers.pop(window, None)
            await release_all(held, timeout=2.0)
            if sub is not None and self._nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.unsubscribe(), 2.0)

    async def _bind(self, queue: str) -> Any:
        durable = await self._ensure_consumer(queue)
        return await self._js.pull_subscribe_bind(durable=durable, stream=self._stream)

    async def _fetch(self, sub: Any, queue: str, count: int) -> list[Any]:
        async def fetch() -> list[Any]:
            try:
                return list(await sub.fetch(batch=count, timeout=self._poll))
            except Exception as exc:
                if _no_messages(exc):
                    return []
                if isinstance(exc, nats.js.errors.NotFoundError):
                    await self._ensure_consumer(queue)  # the server lost it: recreate
                raise

        return await self._run(f"fetch from {queue!r}", fetch, None)
