"""What both clients share: base URL, auth header, answer decoding, wait pacing."""

from __future__ import annotations

import os
from typing import Any

import httpx

from treadle import __version__
from treadle.sdk.errors import error_from_response

DEFAULT_URL = "http://127.0.0.1:8765"


def base_url(url: str | None) -> str:
    """The API URL: given, else ``TREADLE_SERVER``, else the standalone default."""
    return (url or os.environ.get("TREADLE_SERVER") or DEFAULT_URL).rstrip("/")


def default_headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"treadle-sdk/{__version__}", "Accept": "application/json"}
    token = token if token is not None else os.environ.get("TREADLE_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def decode(response: httpx.Response) -> Any:
    """JSON (or text) of a successful answer; the matching :class:`ApiError` otherwise."""
    if response.status_code >= 400:
        raise error_from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


def next_delay(delay: float) -> float:
    """Polling backs off from 0.1s to 1s: quick for short runs, gentle for long ones."""
    return min(1.0, delay * 1.5)
