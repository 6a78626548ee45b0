"""Flower's built-in programs as treadle handlers (registered on import).

A Flower row's ``program`` names a handler; the row's parameters arrive as keyword arguments.
Register your own programs the same way::

    @treadle.handler("ResizeImages")
    def resize_images(SRC: str, WIDTH: str = "640") -> dict: ...

Unlike Flower, a program that fails (raises) fails its task: the flow stops there and shows the
task as suspended (status 2), instead of being marked finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from typing import Any
from urllib.parse import urlsplit

import httpx

from treadle.worker.handlers import current_attempt, handler

RANDOM_SLEEP_RANGE = (1, 5)  # seconds, as Flower's EchoRandomTimeSleep


def _log(text: str) -> None:
    with contextlib.suppress(RuntimeError):  # RuntimeError: called directly, outside a run
        current_attempt().log(text)


@handler("EchoRandomTimeSleep")
async def echo_random_time_sleep(**params: Any) -> dict[str, Any]:
    """Sleep a random whole number of seconds from 1 to 5, saying so before and after."""
    seconds = random.randint(*RANDOM_SLEEP_RANGE)
    _log(f"EchoRandomTimeSleep: start, sleeping {seconds}s")
    await asyncio.sleep(seconds)
    _log("EchoRandomTimeSleep: finish")
    return {"program": "EchoRandomTimeSleep", "slept": seconds}


@handler("EchoParamTimeSleep")
async def echo_param_time_sleep(
    SLEEP_TIME_SECOND: str | int | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Sleep ``SLEEP_TIME_SECOND`` whole seconds, saying so before and after."""
    if SLEEP_TIME_SECOND is None:
        raise ValueError("EchoParamTimeSleep needs the parameter SLEEP_TIME_SECOND")
    try:
        seconds = int(str(SLEEP_TIME_SECOND).strip())
    except ValueError:
        raise ValueError(
            f"SLEEP_TIME_SECOND must be a whole number of seconds, got {SLEEP_TIME_SECOND!r}"
        ) from None
    if seconds < 0:
        raise ValueError(f"SLEEP_TIME_SECOND must not be negative, got {seconds}")
    _log(f"EchoParamTimeSleep: start, sleeping {seconds}s")
    await asyncio.sleep(seconds)
    _log("EchoParamTimeSleep: finish")
    return {"program": "EchoParamTimeSleep", "slept": seconds}


@handler("HTTPPostRequest")
async def http_post_request(
    URL: str | None = None,
    BODY: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """POST ``BODY`` (sent as it is, as JSON) to ``URL``; any status but 2xx fails the task."""
    if not URL:
        raise ValueError("HTTPPostRequest needs the parameter URL")
    if BODY is None:
        raise ValueError("HTTPPostRequest needs the parameter BODY")
    _refuse_link_local(URL)
    _log(f"HTTPPostRequest: POST {URL}")
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), follow_redirects=False) as client:
        try:
            response = await client.post(
                URL, content=BODY.encode(), headers={"Content-Type": "application/json"}
            )
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL {URL!r}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ConnectionError(f"POST {URL} failed: {exc}") from None
    _log(f"HTTPPostRequest: -> {response.status_code}")
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"POST {URL} answered {response.status_code}")
    return {"program": "HTTPPostRequest", "status": response.status_code, "body": response.text}


def _refuse_link_local(url: str) -> None:
    """Cloud metadata services live on link-local addresses; never post there."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if address.is_link_local:
        raise PermissionError(f"refusing to POST to link-local address {host}")
