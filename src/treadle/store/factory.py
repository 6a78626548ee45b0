"""Pick a store implementation from a URL."""

from __future__ import annotations

from treadle.errors import ConfigError
from treadle.store.base import Store

ACCEPTED = "sqlite:///PATH (or a plain file path), postgresql://..., postgres://..., redis://..."

_SQLITE = ("sqlite", "sqlite+aiosqlite")
_POSTGRES = ("postgresql", "postgres", "postgresql+asyncpg")
_REDIS = ("redis", "rediss")


def url_scheme(url: str) -> str | None:
    """The part before ``://``, lower-cased; None for a plain path."""
    if "://" not in url:
        return None
    return url.split("://", 1)[0].lower()


def open_store(url: str) -> Store:
    """A store for ``url``, not yet connected (no I/O happens here).

    Raises :class:`~treadle.errors.ConfigError` for an empty URL or an unknown scheme.
    """
    url = url.strip()
    if not url:
        raise ConfigError(f"the store URL is empty; use one of: {ACCEPTED}")
    scheme = url_scheme(url)
    if scheme is None or scheme in _SQLITE:
        from treadle.store.sqlite import SqliteStore

        return SqliteStore(url)
    if scheme in _POSTGRES:
        from treadle.store.postgres import PostgresStore

        return PostgresStore(url)
    if scheme in _REDIS:
        from treadle.store.redis import RedisStore

        return RedisStore(url)
    raise ConfigError(f"unknown store URL scheme {scheme!r}; use one of: {ACCEPTED}")


async def connect_store(url: str, *, migrate: bool = False) -> Store:
    """Open the store for ``url``, check it answers, and optionally migrate it.

    Raises :class:`~treadle.errors.ServiceUnavailable` (one line, naming the store) when the
    server cannot be reached; the half-opened store is closed first.
    """
    store = open_store(url)
    try:
        await store.ping()
        if migrate:
            await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
