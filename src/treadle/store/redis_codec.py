"""How records live in Redis hashes: one field per attribute, each value JSON text.

Datetimes become whole microseconds since the epoch (a JSON number), so Lua scripts can compare
them and sorted sets can use them as scores. Fields whose names start with ``_`` are private
bookkeeping of the Redis store (which index a row sits in) and never reach a record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from treadle.store.records import (
    AttemptRecord,
    LayerRecord,
    RunRecord,
    TaskRecord,
    WorkerRecord,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
# Width of the time part of a run's sort key: zero-padded so text order equals time order.
KEY_WIDTH = 17

R = TypeVar("R", RunRecord, TaskRecord, AttemptRecord, WorkerRecord, LayerRecord)

DATETIME_FIELDS: dict[type[Any], frozenset[str]] = {
    RunRecord: frozenset({"created_at", "started_at", "finished_at", "deadline_at"}),
    LayerRecord: frozenset({"created_at", "started_at", "finished_at"}),
    TaskRecord: frozenset(
        {
            "created_at",
            "queued_at",
            "available_at",
            "published_at",
            "started_at",
            "finished_at",
        }
    ),
    AttemptRecord: frozenset({"started_at", "lease_expires_at", "finished_at"}),
    WorkerRecord: frozenset({"started_at", "last_seen"}),
}


def to_micros(value: datetime) -> int:
    """Whole microseconds since the epoch (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICRO


def from_micros(value: int | float | str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def run_key(created_at: datetime, run_id: str) -> str:
    """The member of the run indexes: sorts by creation time, then id (as SQL does)."""
    return f"{to_micros(created_at):0{KEY_WIDTH}d}:{run_id}"


def time_bound(at: datetime) -> str:
    """The time part of a run key, for lexicographic range bounds."""
    return f"{to_micros(at):0{KEY_WIDTH}d}"


def encode_value(record_type: type[Any], name: str, value: Any) -> str:
    """JSON text for one attribute of ``record_type``."""
    if value is not None and name in DATETIME_FIELDS[record_type]:
        if not isinstance(value, datetime):
            raise TypeError(f"{record_type.__name__}.{name} must be a datetime, not {value!r}")
        return str(to_micros(value))
    return json.dumps(value, separators=(",", ":"))


def encode_values(record_type: type[Any], values: Mapping[str, Any]) -> dict[str, str]:
    """Encode a partial update, refusing names the record does not have."""
    allowed = set(record_type.__slots__) - {"id", "version"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{record_type.__name__} has no updatable field(s) {', '.join(unknown)}")
    return {name: encode_value(record_type, name, value) for name, value in values.items()}


def encode_record(record: Any) -> dict[str, str]:
    """Every attribute of a record as hash fields."""
    record_type = type(record)
    return {
        name: encode_value(record_type, name, getattr(record, name))
        for name in record_type.__slots__
    }


def decode_fields(record_type: type[Any], fields: Mapping[str, str | None]) -> dict[str, Any]:
    """Decode the attributes of ``record_type`` found in ``fields`` (others are ignored)."""
    datetimes = DATETIME_FIELDS[record_type]
    values: dict[str, Any] = {}
    for name in record_type.__slots__:
        raw = fields.get(name)
        if raw is None:
            continue  # the record's default applies
        value = json.loads(raw)
        if value is not None and name in datetimes:
            value = from_micros(value)
        values[name] = value
    return values


def decode_record(record_type: type[R], fields: Mapping[str, str]) -> R:
    """Rebuild a record from hash fields (private ``_`` fields are ignored)."""
    return record_type(**decode_fields(record_type, fields))


def pairs(flat: list[Any]) -> dict[str, str]:
    """A Redis ``HGETALL`` reply given as a flat list (as Lua returns it) to a dict."""
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
