"""With ``--auth token`` no route of the app answers without a token, except the open ones."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ui.conftest import app_client
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
