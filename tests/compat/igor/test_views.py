"""Native statuses and pause events seen through Igor's eyes."""

from __future__ import annotations

from datetime import UTC, datetime

from treadle.compat.igor.views import STATUSES, layer_status, pause_times, run_status, task_status
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.records import EventRecord


def test_every_native_status_maps_to_an_igor_one() -> None:
    assert {task_status(s.value) for s in TaskStatus} == set(STATUSES)
    assert {run_status(s.value) for s in RunStatus} <= set(STATUSES)
    expected = {
        "pending": "PENDING",
        "paused": "PENDING",
        "queued": "QUEUED",
        "running": "RUNNING",
        "completed": "COMPLETED",
        "failed": "ERRORED",
        "cancelled": "ERRORED",
        "skipped": "SKIPPED",
    }
    assert {s: task_status(s) for s in expected} == expected
    assert layer_status("skipped") == "SKIPPED" and layer_status("cancelled") == "ERRORED"
    assert run_status("paused") == "RUNNING" and run_status("failed") == "ERRORED"


def test_pause_times_follow_the_latest_pause_and_unpause() -> None:
    def event(n: int, kind: str, target: str) -> EventRecord:
        at = datetime.fromtimestamp(1_700_000_000 + n, UTC)
        return EventRecord(n, "r", at, kind, "igor", {"id": target})

    events = [
        event(1, "task.pause", "a"),
        event(2, "task.pause", "b"),
        event(3, "task.unpause", "a"),
        event(4, "layer.pause", "l"),
        event(5, "task.pause", "b"),
    ]
    assert pause_times(events) == {"b": 1_700_000_005, "l": 1_700_000_004}
