"""Workflows that gin itself stored in Redis, read on demand.

gin keeps each definition as JSON under ``workflow.<Name with spaces as _>``; ``treadle gin``
points this module at that Redis so ``POST /wf/`` finds workflows never imported into treadle.
gin's keys carry no prefix, so treadle's own ``?prefix=`` option on the same URL (which isolates
the treadle store) is dropped before connecting.
"""

from __future__ import annotations

import json
import os
from typing import Any

from treadle.errors import ConfigError, DefinitionError, ServiceUnavailable

ENV_VAR = "TREADLE_GIN_REDIS"
_url: str | None = None


def configure(url: str | None) -> None:
    """Use the Redis at ``url`` (``None`` turns the lookup off)."""
    global _url
    _url = url or None


def configured_url() -> str | None:
    """The Redis to read gin workflows from: :func:`configure`, else ``$TREADLE_GIN_REDIS``."""
    return _url or os.environ.get(ENV_VAR) or None


def key_for(name: str) -> str:
    """gin's Redis key of a workflow name."""
    return "workflow." + name.replace(" ", "_")


async def fetch_workflow(url: str, name: str) -> dict[str, Any] | None:
    """The stored gin workflow ``name``, or None when Redis has no such key."""
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError
    except ImportError as exc:  # pragma: no cover - redis ships with the brokers extra
        raise ServiceUnavailable("reading gin workflows needs the redis package") from exc
    from treadle.store.redis import split_redis_url

    try:
        connect_url, _ = split_redis_url(url)
    except ConfigError as exc:
        raise ServiceUnavailable(f"cannot read gin workflows: {exc}") from exc
    client = aioredis.from_url(connect_url)
    try:
        raw = await client.get(key_for(name))
    except RedisError as exc:
        raise ServiceUnavailable(f"cannot read gin workflows from Redis: {exc}") from exc
    finally:
        await client.aclose()
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise DefinitionError(f"Redis key {key_for(name)!r} does not hold JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DefinitionError(f"Redis key {key_for(name)!r} does not hold a workflow object")
    return doc
