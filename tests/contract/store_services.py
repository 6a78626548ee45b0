"""Connections to the real services behind the store contract tests, each isolated.

PostgreSQL gets its own schema and Redis its own key prefix; the ``drop_*`` helpers remove them.
When a service is down the test fails if ``CI`` is set, and is skipped otherwise.
"""

from __future__ import annotations

import os

import asyncpg

from tests.services import service_down
from treadle.errors import ServiceUnavailable
from treadle.store.postgres import PostgresStore
from treadle.store.redis import RedisStore

POSTGRES_URL = os.environ.get("TREADLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TREADLE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


async def open_postgres(schema: str, options: str = "") -> PostgresStore:
    url = with_option(POSTGRES_URL, f"schema={schema}" + (f"&{options}" if options else ""))
    store = PostgresStore(url, pool_size=5)
    try:
        await store.ping()
    except ServiceUnavailable as exc:
        await store.close()
        service_down("PostgreSQL", exc)
    return store


async def drop_postgres(store: PostgresStore) -> None:
    # On a connection of its own: a test may have ended the store's pooled ones.
    await store.close()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
    finally:
        await conn.close()


async def open_redis(prefix: str) -> RedisStore:
    store = RedisStore(with_option(REDIS_URL, f"prefix={prefix}"))
    try:
        await store.ping()
    except ServiceUnavailable as exc:
        await store.close()
        service_down("Redis", exc)
    return store


async def drop_redis(store: RedisStore) -> None:
    keys = [key async for key in store.client.scan_iter(match=store.prefix + "*", count=500)]
    if keys:
        await store.client.delete(*keys)
    await store.close()
