"""In-process nodes on a real store: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import fresh_store
from treadle.api.app import create_app
from treadle.config import Settings
from treadle.engine.node import Node
from treadle.engine.service import EngineService
from treadle.model.states import RunStatus
from treadle.store.records import RunRecord

FAST_TICK = 0.05


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The store every node of a test shares: a fresh SQLite file or PostgreSQL schema."""
    async with fresh_store(request.param, tmp_path, "treadle_trig") as url:
        yield url


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db": url,
        "broker": "memory://",
        "queues": {"default": 8},
        "definitions": [],
        "imports": [],
        "lease_seconds": 5.0,
        "heartbeat_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


def speed_up(service: EngineService) -> None:
    """Tick the coordinator fast so tests measure the engine, not its polling period."""
    if service.coordinator is not None:
        service.coordinator.settings = replace(
            service.coordinator.settings, tick_seconds=FAST_TICK, sweep_seconds=0.2
        )


@asynccontextmanager
async def running_node(
    url: str, roles: tuple[str, ...] = ("coordinator", "worker"), **overrides: Any
) -> AsyncIterator[EngineService]:
    node = Node(make_settings(url, **overrides), roles)
    service = await node.start()
    speed_up(service)
    try:
        yield service
    finally:
        await node.stop()


@asynccontextmanager
async def api_client(
    url: str, roles: tuple[str, ...] = ("api", "coordinator", "worker"), **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, EngineService]]:
    """The real FastAPI app (its lifespan starts the node) over an in-process transport."""
    app = create_app(make_settings(url, **overrides), roles)
    async with app.router.lifespan_context(app):
        service: EngineService = app.state.engine
        speed_up(service)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://treadle") as client:
            yield client, service


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_run(service: EngineService, run_id: str, timeout: float = 20.0) -> RunRecord:
    async def finished() -> RunRecord | None:
        run = await service.get_run(run_id)
        return run if RunStatus(run.status).terminal else None

    result: RunRecord = await wait_for(finished, timeout, f"run {run_id} to finish")
    return result
