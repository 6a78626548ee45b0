"""Small formatting helpers used by the templates (registered as Jinja2 filters)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def duration(seconds: float | None) -> str:
    """``0.25`` -> ``250ms``, ``75`` -> ``1m 15s``, ``7300`` -> ``2h 1m``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


def between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def stamp(value: datetime | None) -> str:
    """A compact UTC time for tables: ``2025-01-31 14:03:07``."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def ago(value: datetime | None, now: datetime) -> str:
    """``3m 5s ago``; for heartbeats and start times."""
    if value is None:
        return ""
    seconds = (now - value).total_seconds()
    if seconds < 1:
        return "just now"
    return f"{duration(seconds)} ago"


def pretty_json(value: Any) -> str:
    """Indented JSON for inputs, outputs and event details (never fails)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def short_id(value: str, size: int = 8) -> str:
    return value[:size]
