"""The ``http`` kind: one HTTP request with its status, headers and body captured."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from treadle.observability.tracing import add_trace_headers
from treadle.runtime.base import OUTPUT_TEXT_LIMIT, AttemptContext, TaskFailed, cap_text
from treadle.runtime.http_guard import AddressPolicy, AddressRefused, GuardedTransport

MAX_REDIRECTS = 10


def status_accepted(status: int, accept: Sequence[int | str]) -> bool:
    """Whether ``status`` matches one of the accepted codes or classes (``"2xx"``)."""
    for rule in accept:
        if isinstance(rule, int) and status == rule:
            return True
        text = str(rule).strip().lower()
        if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
            if status // 100 == int(text[0]):
                return True
        elif text.isdigit() and int(text) == status:
            return True
    return False


async def run_http(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    limit = int(ctx.settings.get("output_limit", OUTPUT_TEXT_LIMIT))
    method = str(spec.get("method", "GET")).upper()
    url = str(spec.get("url", ""))
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    headers.setdefault("X-Treadle-Attempt-Id", ctx.attempt_id)
    add_trace_headers(headers, ctx.trace_headers)
    timeout = httpx.Timeout(
        connect=float(spec.get("connect_timeout", 10.0)),
        read=float(spec.get("read_timeout", 30.0)),
        write=30.0,
        pool=30.0,
    )
    content: str | bytes | None = spec.get("body")
    if spec.get("json") is not None:
        content = json.dumps(spec["json"])
        headers.setdefault("Content-Type", "application/json")
    ctx.log("stdout", f"{method} {url}\n")
    if not url.lower().startswith(("http://", "https://")):
        raise TaskFailed(
            f"invalid URL {url!r}: only http:// and https:// are allowed",
            retryable=False,
            error_type="InvalidURL",
        )
    guard = ctx.settings.get("http_guard")
    try:
        policy = AddressPolicy.from_settings(ctx.settings)
    except ValueError as exc:  # a bad http_allow_networks entry
        raise TaskFailed(str(exc), retryable=False, error_type="ConfigError") from exc
    try:
        # Every connection, redirects included, goes through the address check.
        transport = guard() if callable(guard) else GuardedTransport(policy)
        async with httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=bool(spec.get("follow_redirects", False)),
            max_redirects=MAX_REDIRECTS,
            transport=transport,
        ) as client:
            response = await client.request(method, url, headers=headers, content=content)
    except AddressRefused as exc:
        raise TaskFailed(
            f"{method} {url}: {exc}", retryable=False, error_type="AddressRefused"
        ) from exc
    except httpx.TooManyRedirects as exc:
        raise TaskFailed(
            f"{method} {url}: more than {MAX_REDIRECTS} redirects",
            retryable=False,
            error_type="TooManyRedirects",
        ) from exc
    except httpx.InvalidURL as exc:
        raise TaskFailed(
            f"invalid URL {url!r}: {exc}", retryable=False, error_type="InvalidURL"
        ) from exc
    except httpx.TimeoutException as exc:
        raise TaskFailed(
            f"{method} {url} timed out ({type(exc).__name__})", error_type="Timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise TaskFailed(f"{method} {url} failed: {exc}", error_type="ConnectError") from exc
    body = response.text
    parsed = None
    if body:
        try:
            parsed = response.json()
        except (ValueError, UnicodeDecodeError):
            parsed = None
    output = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": cap_text(body, limit),
        "json": parsed,
    }
    ctx.log("stdout", f"-> {response.status_code}\n")
    accept = spec.get("accept") or ["2xx"]
    if not status_accepted(response.status_code, accept):
        expected = ", ".join(map(str, accept))
        raise TaskFailed(
            f"{method} {url} answered {response.status_code}, expected {expected}",
            output=output,
            http_status=response.status_code,
            error_type="HttpStatus",
        )
    return output
