"""Fixtures for the store contract suite: one fresh, isolated store per test and backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.store_services import drop_postgres, drop_redis, open_postgres, open_redis
from treadle.store.base import Store
from treadle.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store of each kind."""
    suffix = uuid.uuid4().hex[:12]
    if request.param == "sqlite":
        sqlite = SqliteStore(f"sqlite:///{tmp_path / 'treadle.db'}")
        await sqlite.migrate()
        yield sqlite
        await sqlite.close()
    elif request.param == "postgres":
        postgres = await open_postgres(f"treadle_test_{suffix}")
        try:
            await postgres.migrate()
            yield postgres
        finally:
            await drop_postgres(postgres)
    else:
        redis = await open_redis(f"treadle-test-{suffix}:")
        try:
            await redis.migrate()
            yield redis
        finally:
            await drop_redis(redis)
