"""``/api/v1/secrets`` in process: write-only values, validation, and no key configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from treadle.api.app import create_app
from treadle.config import Settings
from treadle.secrets.vault import generate_key


@asynccontextmanager
async def _client(db: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(db=db, **settings), ("api",))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_values_go_in_and_never_come_out(tmp_path: Path) -> None:
    value = "v@lue-that-must-not-echo"
    async with _client(f"sqlite:///{tmp_path / 't.db'}", secret_key=generate_key()) as client:
        put = await client.put("/api/v1/secrets/API_KEY", json={"value": value})
        assert put.status_code == 200, put.text
        body = put.json()
        assert body["name"] == "API_KEY"
        assert set(body) == {"name", "created_at", "updated_at"}
        listed = await client.get("/api/v1/secrets")
        assert [i["name"] for i in listed.json()["items"]] == ["API_KEY"]
        assert value not in listed.text
        # Bad requests name the problem and never echo the value.
        bad_name = await client.put("/api/v1/secrets/bad%20name", json={"value": value})
        assert bad_name.status_code == 422
        assert "bad secret name 'bad name'" in bad_name.json()["error"]["message"]
        assert value not in bad_name.text
        extra = await client.put("/api/v1/secrets/X", json={"value": value, "other": value})
        assert extra.status_code == 422
        assert value not in extra.text
        wrong_type = await client.put("/api/v1/secrets/X", json={"value": 12345678})
        assert wrong_type.status_code == 422
        assert "12345678" not in wrong_type.text
        too_big = await client.put("/api/v1/secrets/X", json={"value": "x" * 70_000})
        assert too_big.status_code == 422
        assert (await client.delete("/api/v1/secrets/API_KEY")).status_code == 204
        gone = await client.delete("/api/v1/secrets/API_KEY")
        assert gone.status_code == 404
        assert gone.json()["error"]["message"] == "no secret 'API_KEY'"


async def test_no_key_configured_is_one_clear_message() -> None:
    # An in-memory store has nowhere to keep a key file, like a server store without a key.
    async with _client("sqlite:///:memory:") as client:
        put = await client.put("/api/v1/secrets/API_KEY", json={"value": "x"})
        assert put.status_code == 503
        message = put.json()["error"]["message"]
        assert message.startswith("no secret key configured: set TREADLE_SECRET_KEY")
        assert (await client.get("/api/v1/secrets")).json() == {"items": []}
