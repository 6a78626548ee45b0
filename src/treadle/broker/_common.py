"""Pieces every network broker shares: URL options, reconnect backoff, the prefetch window.

Brokers are doorbells, so their failure handling is simple: on a transient error, log one line,
wait (exponential backoff with jitter, capped), reconnect and try again. Nothing a broker holds is
the truth, so giving up on an ack or a nack is never fatal: the message comes back later.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from treadle.errors import ConfigError, ServiceUnavailable

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: Options every network broker understands (seconds unless named otherwise).
COMMON_OPTIONS = frozenset(
    {
        "connect_timeout",
        "publish_timeout",
        "visibility_timeout",
        "poll_interval",
        "retry_initial",
        "retry_max",
    }
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def one_line(exc: BaseException) -> str:
    """``Type: message`` on a single line, for logs and ServiceUnavailable messages."""
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]


def redact(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


@dataclass(slots=True)
class UrlOptions:
    """A broker URL split into the part the driver sees and treadle's own ``?key=value`` options.

    Options the driver does not know must not reach it (asyncpg would send them to the server as
    settings; redis-py and aio-pika would reject them), so each broker names the keys it owns.
    """

    driver_url: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, owned: frozenset[str]) -> UrlOptions:
        parts = urlsplit(url)
        kept: list[tuple[str, str]] = []
        options: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in owned:
                options[key] = value
            else:
                kept.append((key, value))
        driver = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)
        )
        return cls(driver, options)

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        raw = self.options.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"broker URL option {key}={raw!r} is not a number") from None
        if value < minimum:
            raise ConfigError(f"broker URL option {key}={raw!r} must be at least {minimum:g}")
        return value

    def name(self, key: str, default: str) -> str:
        """A prefix or schema name: letters, digits, ``_`` and ``-`` only (it lands in keys)."""
        value = self.options.get(key) or default
        if not _NAME.match(value):
            raise ConfigError(
                f"broker URL option {key}={value!r} may hold only letters, digits, '_' and '-'"
            )
        return value


@dataclass(slots=True)
class Backoff:
    """Exponential backoff, capped, with jitter so a fleet does not reconnect in lockstep."""

    initial: float = 0.1
    cap: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def check_queue(queue: str) -> str:
    """Queue names travel in keys, subjects and NOTIFY payloads: keep them short and printable."""
    if not queue or len(queue) > 200 or not queue.isprintable():
        raise ConfigError(f"queue name {queue[:50]!r} must be 1 to 200 printable characters")
    return queue


def check_cancelled() -> None:
    """Re-raise a cancellation that a driver swallowed.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py and others use inside every command)
    drops a cancellation that lands just as the awaited operation completes. A consumer loop
    would then run forever after its task was cancelled, so each loop checks after every fetch.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Closed(ServiceUnavailable):
    """The broker was closed while an operation waited for it."""


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    logger: logging.Logger,
    transient: Callable[[BaseException], bool],
    recover: Callable[[], Awaitable[None]],
    backoff: Backoff,
    is_closed: Callable[[], bool],
    deadline: float | None = None,
) -> T:
    """Run ``operation`` until it succeeds, recovering the connection between transient failures.

    Each failure is logged once, as one line. ``deadline`` (a ``time.monotonic()`` value) turns
    a long outage into :class:`ServiceUnavailable`; without one the loop ends only on close.
    """
    attempt = Backoff(backoff.initial, backoff.cap)
    last: BaseException | None = None
    while True:
        if is_closed():
            raise Closed(f"{what}: the broker is closed")
        try:
            if last is not None:
                await recover()
            result = await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_closed():
                raise Closed(f"{what}: the broker is closed") from exc
            if not transient(exc):
                raise
            last = exc
            delay = attempt.next_delay()
            if deadline is not None and time.monotonic() + delay > deadline:
                raise ServiceUnavailable(f"{what} failed: {one_line(exc)}") from exc
            logger.warning(
                "%s failed (%s); retry %d in %.2fs", what, one_line(exc), attempt.attempt, delay
            )
            await asyncio.sleep(delay)
        else:
            if last is not None:
                logger.info("%s recovered after %d attempt(s)", what, attempt.attempt)
            return result


#: Acks or nacks in flight at once for brokers without a batched settle.
SETTLE_CONCURRENCY = 32


class Window:
    """The prefetch window of one consumer: how many deliveries it holds unacknowledged."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.held = 0
        self._changed = asyncio.Event()

    @property
    def free(self) -> int:
        return max(0, self.size - self.held)

    def take(self, count: int) -> None:
        self.held += count

    def give_back(self) -> None:
        self.held -= 1
        self._changed.set()

    def wake(self) -> None:
        """Wake a waiting consumer without freeing a slot (the broker is closing)."""
        self._changed.set()

    async def wait_free(self) -> int:
        """Wait until a slot frees up (or :meth:`wake`); return how many are free, maybe 0."""
        if self.free == 0:
            self._changed.clear()
            await self._changed.wait()
        return self.free


class HeldDelivery:
    """A delivery that occupies one slot of its consumer's window until acked or nacked.

    Subclasses implement ``_settle(ack)``; this class makes settling idempotent, frees the slot
    exactly once, and never raises: a failed ack or nack only means the message comes back.
    """

    __slots__ = ("_done", "_held", "_window", "body")

    def __init__(self, body: str, window: Window, held: set[HeldDelivery]) -> None:
        self.body = body
        self._window = window
        self._held = held
        self._done = False
        held.add(self)

    @property
    def settled(self) -> bool:
        return self._done

    async def _settle(self, ack: bool) -> None:
        raise NotImplementedError

    async def ack(self) -> None:
        await self._finish(True)

    async def nack(self) -> None:
        await self._finish(False)

    async def _finish(self, ack: bool) -> None:
        if self._done:
            return
        self._done = True
        try:
            await self._settle(ack)
        except ServiceUnavailable as exc:
            _log.warning(
                "%s of a message failed (%s); it will be delivered again",
                "ack" if ack else "nack",
                exc.message,
            )
        finally:
            self._release()

    def _release(self) -> None:
        self._held.discard(self)
        self._window.give_back()

    @classmethod
    async def settle_many(cls, deliveries: Sequence[HeldDelivery], ack: bool) -> None:
        """Ack (or nack) several deliveries of this class; subclasses batch the round trips.

        Here: a few at a time, so a consumer giving back a thousand messages neither waits
        for each in turn nor opens a connection for each."""
        gate = asyncio.Semaphore(SETTLE_CONCURRENCY)

        async def finish(delivery: HeldDelivery) -> None:
            async with gate:
                await delivery._finish(ack)

        await asyncio.gather(*(finish(d) for d in deliveries))

    @staticmethod
    async def _settle_batch(
        deliveries: Sequence[HeldDelivery],
        ack: bool,
        send: Callable[[list[HeldDelivery]], Awaitable[None]],
    ) -> None:
        """Settle the unsettled ones with one ``send`` call; same guarantees as ``_finish``."""
        todo = [d for d in deliveries if not d._done]
        if not todo:
            return
        for delivery in todo:
            delivery._done = True
        try:
            await send(todo)
        except ServiceUnavailable as exc:
            _log.warning(
                "%s of %d messages failed (%s); they will be delivered again",
                "ack" if ack else "nack",
                len(todo),
                exc.message,
            )
        finally:
            for delivery in todo:
                delivery._release()


async def ack_all(deliveries: Sequence[Any]) -> None:
    """Ack every delivery, in as few round trips as each broker allows (batched ``settle_many``
    for held deliveries, one by one otherwise)."""
    await _settle_all(deliveries, ack=True)


async def _settle_all(deliveries: Sequence[Any], ack: bool) -> None:
    by_kind: dict[type, list[Any]] = {}
    for delivery in deliveries:
        by_kind.setdefault(type(delivery), []).append(delivery)
    for kind, group in by_kind.items():
        if issubclass(kind, HeldDelivery):
            await kind.settle_many(group, ack)
        else:
            for delivery in group:
                await (delivery.ack() if ack else delivery.nack())


async def release_all(held: set[HeldDelivery], timeout: float) -> None:
    """Nack every delivery still held (a consumer or broker going away), within ``timeout``."""
    pending = [d for d in list(held) if not d.settled]
    if not pending:
        return
    try:
        # Batched like acks: one call per delivery at once could exceed the client's pool
        # (a coordinator can hold a thousand messages).
        await asyncio.wait_for(_settle_all(pending, ack=False), timeout)
    except TimeoutError:
        _log.warning("gave up releasing %d held message(s); they come back later", len(pending))
