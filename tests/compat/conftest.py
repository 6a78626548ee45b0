"""Helpers shared by the dialect tests: one treadle server per module, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Call ``fetch`` until ``done`` holds for its value; fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout}s: {value!r}")
        time.sleep(0.1)


def json_of(response: Any) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()
