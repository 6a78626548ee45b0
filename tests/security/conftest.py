"""The real app in process over ASGI, with api, coordinator and worker in this event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from treadle.api.app import create_app
from treadle.config import Settings

ROLES = ("api", "coordinator", "worker")


@asynccontextmanager
async def app_client(
    tmp_path: Path, roles: tuple[str, ...] = ROLES, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(
            db=f"sqlite:///{tmp_path / 'security.db'}",
            queues={"default": 2},
            heartbeat_seconds=1.0,
            definitions=[],
            imports=[],
            **settings,
        ),
        roles,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://security.test", timeout=60
        ) as client:
            yield client


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(tmp_path) as client:
        yield client


async def wait_run(client: httpx.AsyncClient, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the run is finished."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']}")
        await asyncio.sleep(0.05)
