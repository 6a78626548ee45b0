"""Rendering and error handling shared by the UI's routes.

UI routes answer in HTML, also when something goes wrong: :class:`UIRoute` turns treadle's
errors into an error page (or a fragment for htmx requests) instead of the API's JSON, and a
missing session into a redirect to the login page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from treadle import __version__
from treadle.engine.service import EngineService
from treadle.errors import ServiceUnavailable, TreadleError
from treadle.ui import fmt
from treadle.ui.auth import LoginRequired, auth_enabled
from treadle.ui.palette import stylesheet

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(
    duration=fmt.duration,
    stamp=fmt.stamp,
    iso=fmt.iso,
    pretty_json=fmt.pretty_json,
    short_id=fmt.short_id,
)
env.globals.update(version=__version__, status_css=stylesheet(), between=fmt.between, ago=fmt.ago)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the values every page uses."""
    context.setdefault("now", datetime.now(UTC))
    context.update(
        request=request,
        path=request.url.path,
        auth_on=auth_enabled(request),
    )
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def fragment(template: str, **context: Any) -> str:
    """Render a partial template to a string (for SSE messages)."""
    context.setdefault("now", datetime.now(UTC))
    return env.get_template(template).render(**context)


def service_of(request: Request) -> EngineService:
    service: EngineService | None = getattr(request.app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    return service


def _error_page(request: Request, exc: TreadleError) -> HTMLResponse:
    template = "_flash.html" if is_htmx(request) else "error.html"
    return render(
        request,
        template,
        status_code=exc.status,
        kind="error",
        message=exc.message,
        title=f"{exc.status} {exc.code.replace('_', ' ')}",
    )


class UIRoute(APIRoute):
    """An APIRoute whose failures are HTML and whose missing login redirects."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                target = "/ui/login?next=" + quote(exc.next_path, safe="")
                if is_htmx(request):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except TreadleError as exc:
                return _error_page(request, exc)

        return guarded
