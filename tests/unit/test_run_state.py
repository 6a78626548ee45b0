"""The coordinator's per-run copy (engine/run_state.py): folding in deltas, noticing staleness."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from treadle.engine.run_state import RunState, StaleState
from treadle.store.delta import delta_from_states
from treadle.store.records import LIGHT_TASK_FIELDS, RunRecord, TaskChange, TaskRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RUN = RunRecord("r", "d", 1, {"tasks": []}, "running", {}, NOW)


def task(i: int, status: str = "pending", **extra: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "id": f"t{i}",
        "run_id": "r",
        "name": f"t{i}",
        "seq": i,
        "status": status,
        "spec": {"kind": "noop"},
        "depends_on": [],
        "queue": "default",
        "priority": 0,
        "created_at": NOW,
    }
    values.update(extra)
    return TaskRecord(**values)


def delta_of(tasks: list[TaskRecord]) -> Any:
    states = [{k: getattr(t, k) for k in LIGHT_TASK_FIELDS} for t in tasks]
    outputs = {t.id: t.output for t in tasks if t.output is not None}
    return delta_from_states(RUN, states, outputs, [])


def group(children: int, window_status: str = "pending") -> list[TaskRecord]:
    parent = task(0, "running", spec={"kind": "noop", "each": list(range(children))})
    kids = [
        task(i + 1, window_status, parent_id="t0", spec={"fanout": {"index": i}})
        for i in range(children)
    ]
    return [parent, *kids]


def test_worker_changes_are_folded_in() -> None:
    rows = [task(0, "queued"), task(1)]
    state = RunState(RUN, rows)
    assert state.version_sum == 1  # queued rows are left out of the sum
    # A claim (queued -> running) changes nothing the scheduler reads: no reload.
    state.absorb(delta_of([dataclasses.replace(rows[0], status="running", version=2), rows[1]]))
    now = [dataclasses.replace(rows[0], status="completed", version=3, output={"x": 1}), rows[1]]
    state.absorb(delta_of(now))
    assert state.tasks["t0"].status == "completed"
    assert state.tasks["t0"].output == {"x": 1}
    assert state.version_sum == 4


def test_a_queued_task_taken_back_to_pending_is_stale() -> None:
    rows = [task(0, "queued")]
    state = RunState(RUN, rows)
    with pytest.raises(StaleState):
        state.absorb(delta_of([dataclasses.replace(rows[0], status="pending", version=2)]))


def test_an_unseen_change_to_a_pending_task_is_stale() -> None:
    rows = [task(0), task(1)]
    state = RunState(RUN, rows)
    # Another coordinator skipped t1 and settled it in one write: not an open row any more.
    now = [rows[0], dataclasses.replace(rows[1], status="skipped", settled=True, version=2)]
    with pytest.raises(StaleState):
        state.absorb(delta_of(now))


def test_an_open_task_settled_elsewhere_is_accepted() -> None:
    rows = [task(0, "completed")]
    state = RunState(RUN, rows)
    state.absorb(delta_of([dataclasses.replace(rows[0], settled=True)]))
    assert state.tasks["t0"].settled


def test_new_rows_are_stale() -> None:
    state = RunState(RUN, [task(0)])
    with pytest.raises(StaleState):
        state.absorb(delta_of([task(0), task(1, "queued")]))


def test_view_gives_a_window_of_pending_children_and_counts_the_settled() -> None:
    rows = group(10)
    state = RunState(RUN, rows)
    assert state.tasks["t0"].rendered == {"fanout_items": 10}
    tasks, counts = state.view(window=3)
    assert [t.id for t in tasks] == ["t0", "t1", "t2", "t3"]
    assert counts == {}
    # Our own writes: two children queued, then one of them finished and settled.
    state.won([TaskChange(f"t{i}", 1, {"status": "queued"}) for i in (1, 2)], {"t1", "t2"})
    state.won([TaskChange("t1", 2, {"status": "completed", "settled": True})], {"t1"})
    tasks, counts = state.view(window=3)
    assert [t.id for t in tasks] == ["t0", "t2", "t3", "t4", "t5"]
    assert counts == {"t0": {"completed": 1}}
    # Queued and running rows are out of the sum: t0 (running) and t2; t1 counts version 3.
    assert state.version_sum == 8 + 3
    assert len(state.view(window=3, everything=True)[0]) == 11


def test_our_lost_or_missing_changes_are_ignored() -> None:
    state = RunState(RUN, [task(0)])
    state.won([TaskChange("t0", 1, {"status": "queued"})], set())
    assert state.tasks["t0"].status == "pending"


def test_open_total_counts_what_may_still_report() -> None:
    rows = [task(0, "queued"), task(1, "running"), task(2), task(3, "completed", settled=True)]
    state = RunState(RUN, rows)
    assert state.open_total == 2  # queued + running; pending and settled ones cannot report
    state.won([TaskChange("t2", 1, {"status": "queued"})], {"t2"})
    assert state.open_total == 3
    finished = dataclasses.replace(rows[1], status="completed", version=2)
    state.absorb(delta_of([rows[0], finished, state.tasks["t2"], rows[3]]))
    assert state.open_total == 3  # finished but not yet settled still counts
    state.settled(["t1"])
    assert state.open_total == 2
    parent, *kids = group(3)
    fanned = RunState(RUN, [parent])
    assert fanned.open_total == 1
    fanned.expanded(TaskChange("t0", parent.version, {"status": "running"}), kids)
    assert fanned.open_total == 1  # the children are pending
