"""With auth on, every UI page needs a session holding a real API token (treadle.api.auth).

Reading needs any valid token; the UI's writes go through the API with the session's token,
so a read-only token sees runs but cannot start or control them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import app_client, wait_run
from treadle.store.sqlite import SqliteStore
from treadle.tokens import Scope, issue_token
from treadle.ui.auth import COOKIE, safe_next

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


async def make_token(tmp_path: Path, name: str, scope: Scope) -> str:
    """A token in the app's store (the database app_client uses), as `treadle token create`."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'ui.db'}")
    try:
        raw, _ = await issue_token(store, name, scope, await store.now())
    finally:
        await store.close()
    return raw


async def login(client: httpx.AsyncClient, token: str) -> None:
    client.cookies.clear()
    answer = await client.post("/ui/login", data={"token": token, "next": "/"})
    assert answer.status_code == 303, answer.text


async def test_every_page_needs_a_login_and_bad_tokens_are_refused(tmp_path: Path) -> None:
    async with app_client(tmp_path, auth="token") as client:
        for page in PAGES:
            response = await client.get(page)
            assert response.status_code == 303, page
            assert response.headers["location"].startswith("/ui/login?next=")
        for bad in ("anything", "trd_" + "x" * 43, ""):
            refused = await client.post("/ui/login", data={"token": bad, "next": "/"})
            assert refused.status_code == 401 and "not accepted" in refused.text
            assert COOKIE not in refused.headers.get("set-cookie", "")


async def test_login_with_a_real_token_opens_the_ui(tmp_path: Path) -> None:
    async with app_client(tmp_path, auth="token") as client:
        token = await make_token(tmp_path, "viewer", Scope.READ)
        first = await client.get("/ui/workers")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Fworkers"
        form = await client.get(first.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text
        assert 'name="next" value="/ui/workers"' in form.text
        bad = await client.post("/ui/login", data={"token": token[:-2], "next": "/ui/workers"})
        assert bad.status_code == 401 and COOKIE not in bad.headers.get("set-cookie", "")
        good = await client.post("/ui/login", data={"token": token, "next": "/ui/workers"})
        assert good.status_code == 303 and good.headers["location"] == "/ui/workers"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = await client.get("/ui/workers")
        assert page.status_code == 200 and "Workers and queues" in page.text
        assert "Sign out" in page.text
        htmx = await client.get("/ui/definitions", headers={"HX-Request": "true"})
        assert htmx.status_code == 200
        # the session cookie also reads the API (the run page links to raw logs) ...
        assert (await client.get("/api/v1/runs")).status_code == 200
        # ... but never writes with it: a write needs the bearer header
        refused = await client.post("/api/v1/runs", json={"definition": "stuck"})
        assert refused.status_code == 401
        out = await client.post("/ui/logout")
        assert out.status_code == 303
        client.cookies.clear()
        again = await client.get("/ui/runs/table", headers={"HX-Request": "true"})
        assert again.status_code == 401 and again.headers["HX-Redirect"].startswith("/ui/login")


async def test_control_and_start_need_a_session_too(tmp_path: Path) -> None:
    async with app_client(tmp_path, auth="token") as client:
        act = await client.post("/ui/act", data={"kind": "run", "id": "x", "op": "kill"})
        assert act.status_code == 303
        started = await client.post("/ui/start/formy", data={"who": "eve"})
        assert started.status_code == 303 and "/ui/login" in started.headers["location"]
        admin = await make_token(tmp_path, "admin", Scope.ADMIN)
        runs = await client.get("/api/v1/runs", headers={"Authorization": f"Bearer {admin}"})
        assert runs.json()["items"] == []


async def running(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run once the coordinator has started it."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        run: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if run["status"] == "running":
            return run
        assert asyncio.get_running_loop().time() < deadline, f"run still {run['status']}"
        await asyncio.sleep(0.05)


async def test_a_read_only_token_cannot_start_or_control(tmp_path: Path) -> None:
    async with app_client(tmp_path, auth="token") as client:
        viewer = await make_token(tmp_path, "viewer", Scope.READ)
        operator = await make_token(tmp_path, "operator", Scope.OPERATE)
        bearer = {"Authorization": f"Bearer {operator}"}
        created = await client.post("/api/v1/runs", json={"definition": "stuck"}, headers=bearer)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        await login(client, viewer)
        page = await client.get(f"/ui/runs/{run_id}")
        assert page.status_code == 200 and run_id in page.text
        # The etag after the coordinator's start of the run: it stays put from then on (the
        # run waits on a queue nobody serves), so the operator's kill below is not stale.
        run = await running(client, run_id)
        kill = {"kind": "run", "id": run_id, "op": "kill", "etag": run["etag"], "label": "r1"}
        denied = await client.post("/ui/act", data=kill)
        assert denied.status_code == 403
        assert "needs scope" in denied.text and "operate" in denied.text
        started = await client.post("/ui/start/stuck", data={})
        assert started.status_code == 403 and "submit" in started.text
        assert (await client.get(f"/api/v1/runs/{run_id}")).json()["status"] != "cancelled"
        assert len((await client.get("/api/v1/runs")).json()["items"]) == 1

        await login(client, operator)
        done = await client.post("/ui/act", data=kill)
        assert done.status_code == 200 and "Killed run r1" in done.text
        assert (await wait_run(client, run_id))["status"] == "cancelled"


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
