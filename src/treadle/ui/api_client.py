"""The UI's writes go through the REST API, in process.

Starting a run or pausing a task from a browser is the same request a script would send
(``POST /api/v1/runs``, ``POST /api/v1/tasks/{id}/pause`` with ``If-Match``), dispatched
straight into this app over ASGI. So the UI gets the API's validation, etag checks, error
messages and, when auth is on, its token check, with the visitor's token as the bearer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from treadle.ui.auth import session_token

_BASE = "http://treadle.ui"


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        return str(self._error.get("code", "error"))

    @property
    def error_message(self) -> str:
        return str(self._error.get("message", f"the API answered {self.status}"))

    @property
    def error_details(self) -> Any:
        return self._error.get("details")

    @property
    def _error(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return dict(self.body["error"])
        return {}


async def call_api(
    request: Request,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> ApiAnswer:
    """Send one request to this app's own API as the current visitor."""
    sent = {"X-Treadle-Actor": "ui", **(headers or {})}
    token = session_token(request)
    if token:
        sent["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=_BASE, timeout=30.0) as client:
        response = await client.request(method, path, json=json, headers=sent)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return ApiAnswer(response.status_code, body)
