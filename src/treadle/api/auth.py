"""Bearer-token authentication for every route (``--auth token``).

:func:`authorize` is one FastAPI dependency that the app applies to all its routes (native
API, dialect routers, metrics, UI); :mod:`treadle.tokens.policy` says which scope a request
needs. Missing or unknown tokens get 401 with ``WWW-Authenticate: Bearer``; a token whose
scope is too small gets 403 naming the scope needed. With ``--auth none`` it does nothing.

:func:`check_token` is the web UI's login seam (see :mod:`treadle.ui.auth`): the UI calls it
with just a token, so :class:`AuthContext` makes the app serving the request findable.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from treadle.config import Settings
from treadle.errors import ServiceUnavailable
from treadle.store.token_records import TokenRecord
from treadle.tokens.policy import required_scope
from treadle.tokens.scopes import Scope as TokenScope
from treadle.tokens.service import verify_token

log = logging.getLogger(__name__)

#: The UI's session cookie; accepted for reads of the API too (the UI links to raw logs).
SESSION_COOKIE = "treadle_token"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_current_app: ContextVar[Any] = ContextVar("treadle_current_app", default=None)
#: Declares the bearer scheme in the OpenAPI document (the docs page's "Authorize" button);
#: :func:`bearer_token` does the parsing, so the error messages are treadle's own.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    description="An API token (`treadle token create`); needed when the server runs with "
    "--auth token. See docs/security.md for the scope each route needs.",
)


class AuthContext:
    """ASGI middleware: remembers which app serves this request (for :func:`check_token`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reset = _current_app.set(scope.get("app"))
        try:
            await self.app(scope, receive, send)
        finally:
            _current_app.reset(reset)


def auth_on(settings: Settings) -> bool:
    return settings.auth == "token"


def _unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = f'Bearer realm="treadle", error="{error}"' if error else 'Bearer realm="treadle"'
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer ...`` (or, for reads, of the UI's cookie)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized(
                "the Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        return value.strip()
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(SESSION_COOKIE) or None
    return None


async def _lookup(app: Any, token: str) -> TokenRecord | None:
    service = getattr(app.state, "engine", None)
    if service is None:
        raise ServiceUnavailable("the engine is not started yet")
    store = service.store
    return await verify_token(store, token, await store.now())


async def authorize(
    request: Request,
    _declared: HTTPAuthorizationCredentials | None = Depends(BEARER_SCHEME),
) -> None:
    """The dependency on every route: 401 / 403 unless the request's token may do this."""
    settings: Settings = request.app.state.settings
    if not auth_on(settings):
        return
    needed = required_scope(request.method, request.url.path)
    if needed is None:
        return
    token = bearer_token(request)
    if token is None:
        raise _unauthorized(
            f"authentication required: send 'Authorization: Bearer <token>' "
            f"(this request needs scope {needed.value!r})"
        )
    record = await _lookup(request.app, token)
    if record is None:
        raise _unauthorized(
            "the token is not valid: unknown, revoked or malformed", "invalid_token"
        )
    held = TokenScope(record.scope)
    if not held.allows(needed):
        raise HTTPException(
            403,
            f"token {record.name!r} has scope {held.value!r}; "
            f"{request.method} {request.url.path} needs scope {needed.value!r}",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="treadle", error="insufficient_scope", scope="{needed.value}"'
                )
            },
        )
    request.state.token = record


async def token_scope(token: str) -> TokenScope | None:
    """The scope of a valid token, for the app serving the current request; None otherwise."""
    app = _current_app.get()
    if app is None or not token:
        return None
    try:
        record = await _lookup(app, token)
    except ServiceUnavailable:
        return None
    return TokenScope(record.scope) if record is not None else None


#: What the web UI's actions need (its writes go through the API, which enforces the same);
#: the UI may use :func:`token_allows` to offer only the buttons a session can use.
UI_ACTIONS: dict[str, TokenScope] = {
    "view": TokenScope.READ,
    "start": TokenScope.SUBMIT,
    "control": TokenScope.OPERATE,
}


async def token_allows(token: str, action: str) -> bool:
    """Whether ``token`` may do the UI ``action`` (a key of :data:`UI_ACTIONS`)."""
    held = await token_scope(token)
    return held is not None and held.allows(UI_ACTIONS[action])


async def check_token(token: str) -> bool:
    """The web UI's login check: any valid token may sign in (reading needs ``read``; the
    UI's control buttons and start form go through the API, which asks for more)."""
    return await token_scope(token) is not None


def announce(settings: Settings) -> None:
    """Say at start whether authentication is on; loudly when it is off beyond loopback."""
    if auth_on(settings):
        log.info("authentication is on: every API request needs a bearer token")
    elif settings.host in LOOPBACK:
        log.info("authentication is off (--auth none); listening on loopback only")
    else:
        log.warning(
            "WARNING: authentication is OFF (--auth none) and the server listens on %s: "
            "anyone who can reach %s:%s can run commands on this machine. "
            "Use --auth token (see docs/security.md).",
            settings.host,
            settings.host,
            settings.port,
        )
