"""Concurrency limits per definition and per key; rate limits per queue."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime

from tests.integration.triggers.conftest import running_node, wait_run
from treadle.store.records import RunRecord


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one instant."""
    points = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    best = current = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):  # ends before starts on ties
        current += step
        best = max(best, current)
    return best


def spans(runs: list[RunRecord]) -> list[tuple[datetime, datetime]]:
    result = []
    for run in runs:
        assert run.started_at is not None and run.finished_at is not None, run
        result.append((run.started_at, run.finished_at))
    return result


async def test_definition_limit_caps_running_runs_and_the_rest_wait_pending(
    store_url: str,
) -> None:
    definition = {
        "name": "capped",
        "concurrency": {"limit": 2},
        "tasks": [{"name": "work", "kind": "sleep", "seconds": 1.0}],
    }
    async with running_node(store_url) as service:
        await service.create_definition(definition)
        runs = [await service.start_run("capped") for _ in range(6)]
        statuses = [(await service.get_run(r.id)).status for r in runs]
        finished = [await wait_run(service, r.id, timeout=30) for r in runs]
    assert all(r.status == "completed" for r in finished)
    assert "pending" in statuses
    assert max_overlap(spans(finished)) == 2
    # Oldest first: a run never starts a whole wave (1 s) before one created earlier. Two runs
    # admitted in the same pass may stamp their starts apart in either order (more so on a
    # loaded machine), so the check allows half a wave.
    starts = [r.started_at for r in finished]
    for earlier, later in itertools.pairwise(starts):
        assert earlier is not None and later is not None
        assert (earlier - later).total_seconds() < 0.5, (earlier, later)


async def test_key_limit_applies_per_key_value(store_url: str) -> None:
    definition = {
        "name": "per-customer",
        "inputs": {"customer": {"type": "string", "required": True}},
        "concurrency": {"limit": 1, "key": "{{ inputs.customer }}"},
        "tasks": [{"name": "work", "kind": "sleep", "seconds": 0.4}],
    }
    async with running_node(store_url) as service:
        await service.create_definition(definition)
        runs = [
            await service.start_run("per-customer", {"customer": c})
            for c in ("acme", "acme", "acme", "zeta", "zeta", "omni")
        ]
        finished = [await wait_run(service, r.id, timeout=30) for r in runs]
    by_customer: dict[str, list[RunRecord]] = defaultdict(list)
    for run in finished:
        assert run.status == "completed"
        by_customer[run.inputs["customer"]].append(run)
    for group in by_customer.values():
        assert max_overlap(spans(group)) == 1
    # Different keys do run side by side.
    assert max_overlap(spans(finished)) >= 2


async def test_cancelled_waiting_run_frees_its_place(store_url: str) -> None:
    definition = {
        "name": "one-at-a-time",
        "concurrency": {"limit": 1},
        "tasks": [{"name": "work", "kind": "sleep", "seconds": 0.5}],
    }
    async with running_node(store_url) as service:
        await service.create_definition(definition)
        first = await service.start_run("one-at-a-time")
        second = await service.start_run("one-at-a-time")
        third = await service.start_run("one-at-a-time")
        await service.cancel_run(second.id)
        done = [await wait_run(service, r.id) for r in (first, third)]
    assert [r.status for r in done] == ["completed", "completed"]
    assert max_overlap(spans(done)) == 1


async def test_bad_concurrency_key_fails_the_run(store_url: str) -> None:
    definition = {
        "name": "bad-key",
        "concurrency": {"limit": 1, "key": "{{ inputs.missing }}"},
        "tasks": [{"name": "work", "kind": "noop"}],
    }
    async with running_node(store_url) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id)
    assert done.status == "failed"
    assert "concurrency key" in (done.error or "")


async def test_queue_rate_limit_paces_dispatch(store_url: str) -> None:
    rate = 5.0
    count = 16
    definition = {
        "name": "paced",
        "tasks": [
            {"name": f"t{i}", "kind": "noop", "queue": "paced", "depends_on": []}
            for i in range(count)
        ],
    }
    async with running_node(
        store_url, queues={"default": 4, "paced": 16}, queue_rates={"paced": rate}
    ) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id, timeout=30)
        tasks = await service.get_tasks(run.id)
    assert done.status == "completed", done.error
    starts = sorted(t.started_at for t in tasks if t.started_at is not None)
    assert len(starts) == count
    # Dispatch slots are 1/rate apart from the first, and no task starts before its slot: the
    # last start comes at least (count - 1) / rate after the run was created, however loaded the
    # machine is (load may only delay starts; unpaced, all 16 start within a fraction of a second).
    assert done.created_at is not None
    span = (starts[-1] - done.created_at).total_seconds()
    assert span >= (count - 1) / rate - 0.05, span
    print(f"\n{count} tasks at {rate}/s: last start {span:.2f}s after the run was created")


async def test_unlimited_queue_is_not_paced(store_url: str) -> None:
    definition = {
        "name": "free",
        "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(20)],
    }
    async with running_node(store_url, queue_rates={"paced": 1.0}) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id, timeout=30)
        tasks = await service.get_tasks(run.id)
    assert done.status == "completed"
    starts = sorted(t.started_at for t in tasks if t.started_at is not None)
    assert (starts[-1] - starts[0]).total_seconds() < 1.0
