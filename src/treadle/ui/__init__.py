"""The web UI: server-rendered pages (Jinja2) made live with htmx and Server-Sent Events.

:func:`mount` adds it to an API app: pages at ``/`` and under ``/ui/``, assets under
``/static/`` (all shipped in the package; the browser never fetches anything from elsewhere).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from treadle.ui import actions, pages_definitions, pages_login, pages_run, pages_runs, pages_workers
from treadle.ui.web import STATIC_DIR


def mount(app: FastAPI) -> None:
    """Serve the UI from ``app``; call after the API routers so theirs match first."""
    for module in (pages_login, pages_runs, pages_run, pages_definitions, pages_workers, actions):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
