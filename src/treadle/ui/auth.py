"""Login for the web UI when the server runs with authentication on.

The seam: with ``settings.auth`` other than ``"none"`` every UI page needs a session cookie
holding an API token, and a token is accepted only if ``treadle.api.auth.check_token(token)``
says so (it may be sync or async). Until that module exists, no token is accepted: the UI
fails closed rather than showing runs to anyone. Static assets stay public; they hold no data.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from fastapi import Request

log = logging.getLogger(__name__)

COOKIE = "treadle_token"
CHECKER_MODULE = "treadle.api.auth"


class LoginRequired(Exception):
    """Raised by a UI route when the visitor has no valid session."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def auth_enabled(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return str(getattr(settings, "auth", "none")) != "none"


async def check_token(token: str) -> bool:
    """Ask ``treadle.api.auth.check_token``; False when it is missing or says no."""
    if not token:
        return False
    try:
        module = importlib.import_module(CHECKER_MODULE)
    except ImportError:
        log.warning("auth is on but %s is not installed: the UI accepts no token", CHECKER_MODULE)
        return False
    checker = getattr(module, "check_token", None)
    if not callable(checker):
        log.warning(
            "auth is on but %s has no check_token(): the UI accepts no token", CHECKER_MODULE
        )
        return False
    result: Any = checker(token)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def session_token(request: Request) -> str | None:
    """The API token of this visitor (None when auth is off or there is none)."""
    if not auth_enabled(request):
        return None
    return request.cookies.get(COOKIE) or None


async def require_login(request: Request) -> None:
    """FastAPI dependency of every UI page: raises :class:`LoginRequired` without a session."""
    if not auth_enabled(request):
        return
    if await check_token(request.cookies.get(COOKIE, "")):
        return
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    raise LoginRequired(path)


def safe_next(value: str | None) -> str:
    """Only local paths after login (an absolute URL would make an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
