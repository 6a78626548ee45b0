"""The registry of Python handlers and the ``@treadle.handler`` decorator.

A handler is a plain (sync or async) function registered under a name. It is called with the
task's ``args`` as keyword arguments and returns a JSON-serialisable output. What it needs to
know about the attempt it serves comes from :func:`current_attempt`, not from an extra argument.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from threading import Event
from typing import Any, TypeVar

from treadle.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    name: str
    func: Callable[..., Any]
    is_async: bool
    batch_size: int | None = None
    batch_wait: float | None = None


_REGISTRY: dict[str, HandlerInfo] = {}


@dataclass(slots=True)
class AttemptInfo:
    """The attempt a handler is serving; ``attempt_id`` is a ready idempotency key.

    ``cancelled`` is set when the attempt is killed or times out: async handlers also get
    :class:`asyncio.CancelledError`; sync handlers (which run in a thread) poll
    :attr:`is_cancelled` or wait on ``cancelled.wait(seconds)`` between steps.
    """

    run_id: str
    task_id: str
    task_name: str
    attempt_id: str
    attempt_number: int
    _log: Callable[[str, str], None] = field(repr=False)
    cancelled: Event = field(default_factory=Event, repr=False)
    _heartbeat: Callable[[], None] | None = field(default=None, repr=False)
    trace_headers: dict[str, str] = field(default_factory=dict, repr=False)

    def log(self, text: str, stream: str = "stdout") -> None:
        """Append a line to the task's log."""
        self._log(stream, text if text.endswith("\n") else text + "\n")

    def heartbeat(self) -> None:
        """Renew this attempt's lease now (long handlers call it between steps).

        Safe from sync and async handlers. If the store no longer honours the lease, the worker
        stops the attempt and :attr:`cancelled` is set.
        """
        if self._heartbeat is not None:
            self._heartbeat()

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the attempt's span when tracing is on."""
        return self.trace_headers.get("traceparent")

    @property
    def trace_id(self) -> str | None:
        """The 32-hex-digit trace id of the run's trace when tracing is on."""
        parts = (self.traceparent or "").split("-")
        return parts[1] if len(parts) == 4 else None

    @property
    def is_cancelled(self) -> bool:
        """True once the attempt was killed or timed out (sync handlers should poll this)."""
        return self.cancelled.is_set()


_CURRENT: ContextVar[AttemptInfo | None] = ContextVar("treadle_current_attempt", default=None)


def current_attempt() -> AttemptInfo:
    """The attempt the calling handler serves; raises outside a handler."""
    info = _CURRENT.get()
    if info is None:
        raise RuntimeError("current_attempt() is only available inside a treadle handler")
    return info


def set_current_attempt(info: AttemptInfo | None) -> Token[AttemptInfo | None]:
    return _CURRENT.set(info)


def reset_current_attempt(token: Token[AttemptInfo | None]) -> None:
    _CURRENT.reset(token)


def handler(
    name: str | None = None, *, batch_size: int | None = None, batch_wait: float | None = None
) -> Callable[[F], F]:
    """Register a function as the handler ``name`` (default: the function's name).

    The function is returned unchanged, so it stays callable and testable as it is.
    """

    def register(func: F) -> F:
        key = name or func.__name__
        _REGISTRY[key] = HandlerInfo(
            key, func, inspect.iscoroutinefunction(func), batch_size, batch_wait
        )
        return func

    return register


def get_handler(name: str) -> HandlerInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise LookupError(f"no handler registered as {name!r} (registered: {known})") from None


def registered_handlers() -> list[str]:
    return sorted(_REGISTRY)


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def import_modules(modules: list[str]) -> None:
    """Import user modules so their ``@treadle.handler`` functions register."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"cannot import handler module {module!r}: {exc}") from exc
