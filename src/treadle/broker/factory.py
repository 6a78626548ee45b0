"""Open a broker from its URL: the scheme picks the implementation."""

from __future__ import annotations

from urllib.parse import urlsplit

from treadle.broker.base import Broker
from treadle.errors import ConfigError

_SCHEMES = {
    "memory": "memory",
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql+asyncpg": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "nats": "nats",
    "tls": "nats",
}

#: The schemes named in error messages (aliases such as ``postgresql+asyncpg`` work too).
ACCEPTED = (
    "memory://",
    "postgresql://",
    "postgres://",
    "redis://",
    "amqp://",
    "amqps://",
    "nats://",
)


def open_broker(url: str) -> Broker:
    """A broker for ``url``, not yet connected: call ``await broker.connect()`` next.

    Driver imports happen here, per scheme, so an install without an optional driver still
    opens the brokers it has.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        shown = scheme or url[:40]
        raise ConfigError(
            f"unknown broker URL scheme {shown!r}; use one of {', '.join(ACCEPTED)}",
            details={"url_scheme": shown, "accepted": list(ACCEPTED)},
        )
    try:
        return _build(kind, url)
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"the {kind} broker needs the {exc.name!r} package: pip install 'treadle[brokers]'"
        ) from exc


def _build(kind: str, url: str) -> Broker:
    if kind == "memory":
        from treadle.broker.memory import MemoryBroker

        return MemoryBroker(url)
    if kind == "postgres":
        from treadle.broker.postgres import PostgresBroker

        return PostgresBroker(url)
    if kind == "redis":
        from treadle.broker.redis import RedisBroker

        return RedisBroker(url)
    if kind == "rabbitmq":
        from treadle.broker.rabbitmq import RabbitMQBroker

        return RabbitMQBroker(url)
    from treadle.broker.nats import NatsBroker

    return NatsBroker(url)
