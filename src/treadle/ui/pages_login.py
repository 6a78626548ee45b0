"""Login and logout (only meaningful when the server runs with authentication on)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from treadle.ui.auth import COOKIE, auth_enabled, check_token, safe_next
from treadle.ui.web import UIRoute, render

router = APIRouter(route_class=UIRoute)

_MAX_AGE = 12 * 3600


@router.get("/ui/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if not auth_enabled(request):
        return RedirectResponse(next_path, status_code=303)
    return render(request, "login.html", title="Sign in", next_path=next_path, problem=None)


@router.post("/ui/login", include_in_schema=False)
async def login(
    request: Request, token: str = Form(""), next_path: str = Form("/", alias="next")
) -> Response:
    target = safe_next(next_path)
    if not auth_enabled(request):
        return RedirectResponse(target, status_code=303)
    if not await check_token(token.strip()):
        return render(
            request,
            "login.html",
            status_code=401,
            title="Sign in",
            next_path=target,
            problem="That token was not accepted.",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token.strip(),
        max_age=_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login" if auth_enabled(request) else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
