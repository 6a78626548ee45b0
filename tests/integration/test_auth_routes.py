"""With ``--auth token`` no route of the app answers without a token, except the open ones."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from tests.ui.conftest import app_client
from treadle.api.auth import _current_app, check_token, token_allows, token_scope
from treadle.store.sqlite import SqliteStore
from treadle.tokens import Scope, issue_token
from treadle.tokens.policy import required_scope


async def test_every_route_refuses_a_request_without_a_token(tmp_path: Path) -> None:
    async with app_client(tmp_path, roles=("api",), auth="token") as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        checked = opened = 0
        for template, operations in paths.items():
            path = re.sub(r"\{[^}]+\}", "x", template.replace("{op}", "pause"))
            for method in operations:
                response = await client.request(method.upper(), path)
                if required_scope(method, path) is None:
                    assert response.status_code != 401, (method, template)
                    opened += 1
                    continue
                assert response.status_code == 401, (method, template, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
        print(f"{checked} routes refused without a token, {opened} open")
        assert checked > 50 and opened >= 5


async def test_with_auth_off_nothing_asks_for_a_token(tmp_path: Path) -> None:
    async with app_client(tmp_path, roles=("api",)) as client:
        assert (await client.get("/api/v1/runs")).status_code == 200
        assert (await client.get("/api/v1/tokens")).status_code == 200
        assert (await client.get("/jobs")).status_code == 200


async def test_ui_helpers_answer_for_the_app_serving_the_request(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'helpers.db'}")
    await store.migrate()
    try:
        now = await store.now()
        viewer, _ = await issue_token(store, "viewer", Scope.READ, now)
        operator, _ = await issue_token(store, "operator", Scope.OPERATE, now)
        # outside a request no app is known: nothing is accepted
        assert await check_token(viewer) is False
        app = SimpleNamespace(state=SimpleNamespace(engine=SimpleNamespace(store=store)))
        reset = _current_app.set(app)
        try:
            assert await check_token(viewer) and await check_token(operator)
            assert not await check_token("trd_" + "x" * 43)
            assert await token_allows(viewer, "view")
            assert not await token_allows(viewer, "start")
            assert not await token_allows(viewer, "control")
            assert await token_allows(operator, "start") and await token_allows(operator, "control")
            assert await token_scope(operator) is Scope.OPERATE
        finally:
            _current_app.reset(reset)
    finally:
        await store.close()
