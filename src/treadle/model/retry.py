"""Retry policy decisions: whether a failed attempt is tried again, and after how long."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def should_retry(
    policy: Mapping[str, Any] | None,
    attempt_number: int,
    *,
    exit_code: int | None = None,
    http_status: int | None = None,
    error_type: str | None = None,
    retryable: bool = True,
) -> bool:
    """True when ``policy`` allows another attempt after attempt ``attempt_number`` failed."""
    if not policy or not retryable:
        return False
    if attempt_number >= int(policy.get("max_attempts", 1)):
        return False
    on = policy.get("on")
    if not on:
        return True
    exit_codes = on.get("exit_codes")
    statuses = on.get("http_statuses")
    errors = on.get("errors")
    if exit_codes and exit_code is not None and exit_code in exit_codes:
        return True
    if statuses and http_status is not None and http_status in statuses:
        return True
    return bool(errors and error_type is not None and error_type in errors)


def retry_delay(
    policy: Mapping[str, Any], attempt_number: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the attempt after ``attempt_number`` (1-based)."""
    initial = float(policy.get("initial", 1.0))
    ceiling = float(policy.get("max", 300.0))
    if policy.get("backoff", "exponential") == "fixed":
        delay = initial
    else:
        delay = initial * (2 ** max(0, attempt_number - 1))
    delay = min(delay, ceiling)
    if policy.get("jitter"):
        delay *= (rng or random).uniform(0.5, 1.0)
    return delay
