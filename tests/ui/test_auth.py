"""With auth on, every UI page needs a session holding a token that the API's checker accepts."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import app_client
from treadle.ui.auth import CHECKER_MODULE, COOKIE, safe_next

PAGES = [
    "/",
    "/ui/runs",
    "/ui/runs/table",
    "/ui/definitions",
    "/ui/start/formy",
    "/ui/workers",
    "/ui/workers/tables",
    "/ui/runs/some-run",
    "/ui/runs/some-run/stream",
]


@pytest.fixture
def checker() -> Iterator[list[str]]:
    """Install treadle.api.auth.check_token accepting one token (unless the real one exists)."""
    seen: list[str] = []
    if CHECKER_MODULE in sys.modules or Path("src/treadle/api/auth.py").exists():
        pytest.skip("a real treadle.api.auth exists; its own tests cover it")  # pragma: no cover
    module = types.ModuleType(CHECKER_MODULE)

    async def check_token(token: str) -> bool:
        seen.append(token)
        return token == "good-token"

    module.check_token = check_token  # type: ignore[attr-defined]
    sys.modules[CHECKER_MODULE] = module
    try:
        yield seen
    finally:
        del sys.modules[CHECKER_MODULE]


async def test_without_a_checker_the_ui_fails_closed(tmp_path: Path) -> None:
    async with app_client(tmp_path, auth="token") as client:
        for page in PAGES:
            response = await client.get(page)
            assert response.status_code == 303, page
            assert response.headers["location"].startswith("/ui/login?next=")
        refused = await client.post("/ui/login", data={"token": "anything", "next": "/"})
        assert refused.status_code == 401 and "not accepted" in refused.text


async def test_login_with_a_good_token_opens_the_ui(tmp_path: Path, checker: list[str]) -> None:
    async with app_client(tmp_path, auth="token") as client:
        first = await client.get("/ui/workers")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Fworkers"
        form = await client.get(first.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text
        assert 'name="next" value="/ui/workers"' in form.text
        bad = await client.post("/ui/login", data={"token": "bad", "next": "/ui/workers"})
        assert bad.status_code == 401 and COOKIE not in bad.headers.get("set-cookie", "")
        good = await client.post("/ui/login", data={"token": "good-token", "next": "/ui/workers"})
        assert good.status_code == 303 and good.headers["location"] == "/ui/workers"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = await client.get("/ui/workers")
        assert page.status_code == 200 and "Workers and queues" in page.text
        assert "Sign out" in page.text
        htmx = await client.get("/ui/definitions", headers={"HX-Request": "true"})
        assert htmx.status_code == 200
        out = await client.post("/ui/logout")
        assert out.status_code == 303
        client.cookies.clear()
        again = await client.get("/ui/runs/table", headers={"HX-Request": "true"})
        assert again.status_code == 401 and again.headers["HX-Redirect"].startswith("/ui/login")
        assert "good-token" in checker and "bad" in checker


async def test_control_and_start_need_a_session_too(tmp_path: Path, checker: list[str]) -> None:
    async with app_client(tmp_path, auth="token") as client:
        act = await client.post("/ui/act", data={"kind": "run", "id": "x", "op": "kill"})
        assert act.status_code == 303
        started = await client.post("/ui/start/formy", data={"who": "eve"})
        assert started.status_code == 303 and "/ui/login" in started.headers["location"]
        assert (await client.get("/api/v1/runs")).json()["items"] == []


async def test_auth_off_needs_no_login(tmp_path: Path) -> None:
    async with app_client(tmp_path) as client:
        assert (await client.get("/ui/workers")).status_code == 200
        assert (await client.get("/ui/login?next=/ui/workers")).headers["location"] == "/ui/workers"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/ui/runs?x=1", "/ui/runs?x=1"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
        (None, "/"),
        ("", "/"),
    ],
)
def test_only_local_paths_after_login(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected
