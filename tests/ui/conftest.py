"""UI fixtures: the real app in process (over ASGI) and a real standalone server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.ui.defs import write_definitions
from treadle.api.app import create_app
from treadle.config import Settings

ROLES = ("api", "coordinator", "worker")


@asynccontextmanager
async def app_client(
    tmp_path: Path, roles: tuple[str, ...] = ROLES, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (api, coordinator and worker in this event loop)."""
    folder = write_definitions(tmp_path / "defs")
    app = create_app(
        Settings(
            db=f"sqlite:///{tmp_path / 'ui.db'}",
            definitions=[str(folder)],
            queues={"default": 4},
            heartbeat_seconds=1.0,
            **settings,
        ),
        roles,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
            yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(tmp_path) as c:
        yield c


async def wait_run(
    client: httpx.AsyncClient, run_id: str, timeout: float = 30.0, until: str = "terminal"
) -> dict[str, Any]:
    """Poll the API until the run is finished (or has the status ``until``)."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if run["status"] == until or (
            until == "terminal" and run["status"] in ("completed", "failed", "cancelled")
        ):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']}")
        await asyncio.sleep(0.05)


async def start(client: httpx.AsyncClient, definition: str, **inputs: Any) -> str:
    response = await client.post("/api/v1/runs", json={"definition": definition, "inputs": inputs})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[Server]:
    folder = write_definitions(tmp_path / "defs")
    srv = start_server(tmp_path, "--definitions", str(folder), "--queue", "default:4")
    try:
        yield srv
    finally:
        srv.stop()
