"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from treadle import __version__, ui
from treadle.api.auth import AuthContext, authorize
from treadle.api.errors import install_error_handlers
from treadle.api.limits import BodySizeLimit
from treadle.api.v1 import (
    control,
    definitions,
    hooks,
    metrics,
    runs,
    schedules,
    secrets,
    signals,
    system,
    tokens,
)
from treadle.config import Settings
from treadle.engine.node import Node

log = logging.getLogger(__name__)


def _compat_routers() -> list[object]:
    try:
        from treadle import compat
    except ImportError:  # pragma: no cover
        return []
    routers = getattr(compat, "routers", None)
    return list(routers()) if callable(routers) else []


def create_app(settings: Settings, roles: Sequence[str] = ("api",)) -> FastAPI:
    """Build the app; its lifespan starts a :class:`Node` running ``roles``."""
    node = Node(settings, roles)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # serve_http starts the node before uvicorn (so a bad store is one line, exit 2);
        # an app served some other way starts it here.
        app.state.engine = node.service or await node.start()
        try:
            yield
        finally:
            await node.stop()
            app.state.engine = None

    app = FastAPIOffline(
        title="treadle",
        version=__version__,
        lifespan=lifespan,
        description="A durable workflow engine. Native API v1 plus the seed dialects.",
        # On every route, dialects and UI included; treadle.tokens.policy decides the scope.
        dependencies=[Depends(authorize)],
    )
    app.state.settings = settings
    app.state.node = node
    app.state.engine = None
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthContext)
    app.include_router(system.router)
    app.include_router(definitions.router)
    app.include_router(runs.router)
    app.include_router(metrics.router)
    app.include_router(control.router)  # after runs: its /runs/{id}/cancel stays first
    app.include_router(signals.router)
    app.include_router(schedules.router)
    app.include_router(hooks.router)
    app.include_router(tokens.router)
    app.include_router(secrets.router)
    for router in _compat_routers():
        app.include_router(router)  # type: ignore[arg-type]
    ui.mount(app)  # last: pages at / and /ui/..., assets at /static/
    return app
