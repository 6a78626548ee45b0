"""`each` fan-out end to end: inputs or upstream lists, max_parallel, list output, 10,000 items."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import BOTH_STORES, SQLITE_ONLY, by_name, settings_for, wait_run
from treadle import handler
from treadle.engine.node import Node
from treadle.engine.service import EngineService

_active = {"now": 0, "peak": 0}


@handler("semantics_track")
async def _track(item: int) -> dict[str, int]:
    _active["now"] += 1
    _active["peak"] = max(_active["peak"], _active["now"])
    try:
        await asyncio.sleep(0.05)
    finally:
        _active["now"] -= 1
    return {"double": item * 2}


@BOTH_STORES
async def test_each_over_inputs_with_max_parallel(service: EngineService) -> None:
    _active.update(now=0, peak=0)
    doc = {
        "name": "fan",
        "inputs": {"items": {"type": "array", "required": True}},
        "tasks": [
            {
                "name": "per",
                "kind": "python",
                "handler": "semantics_track",
                "args": {"item": "{{ item }}"},
                "each": "{{ inputs['items'] }}",
                "max_parallel": 2,
            },
            {
                "name": "sum",
                "kind": "log",
                "message": "{{ tasks.per.output | map(attribute='double') | sum }}",
            },
        ],
    }
    run = await service.start_run(doc, {"items": [1, 2, 3, 4, 5, 6]})
    done = await wait_run(service, run.id)
    assert done.status == "completed", done.error
    assert _active["peak"] == 2
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["per"].output == [{"double": d} for d in (2, 4, 6, 8, 10, 12)]
    assert tasks["sum"].output == {"message": "42"}
    assert [tasks[f"per[{i}]"].status for i in range(6)] == ["completed"] * 6


@BOTH_STORES
async def test_each_over_upstream_output_with_index(service: EngineService) -> None:
    doc = {
        "name": "fan2",
        "tasks": [
            {"name": "list", "kind": "shell", "command": ["echo", '{"ids": ["a", "b", "c"]}']},
            {
                "name": "per-item",
                "kind": "shell",
                "command": ["echo", "{{ index }}:{{ item }}"],
                "each": "{{ tasks.list.output.json.ids }}",
            },
            {
                "name": "n",
                "kind": "log",
                "message": "{{ tasks['per-item'].output | length }} items",
            },
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed", done.error
    tasks = by_name(await service.get_tasks(run.id))
    assert [o["stdout"].strip() for o in tasks["per-item"].output] == ["0:a", "1:b", "2:c"]
    assert tasks["n"].output == {"message": "3 items"}


@BOTH_STORES
async def test_each_child_failure_fails_group_and_run(service: EngineService) -> None:
    doc = {
        "name": "fan3",
        "tasks": [
            {
                "name": "per",
                "kind": "shell",
                "command": ["sh", "-c", "exit {{ item }}"],
                "each": [0, 3, 0],
            },
            {"name": "after", "kind": "noop"},
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["per"].status == "failed"
    assert "first per[1]" in (tasks["per"].error or "")
    assert tasks["after"].status == "cancelled"


@BOTH_STORES
async def test_each_allow_failure_keeps_going(service: EngineService) -> None:
    doc = {
        "name": "fan4",
        "tasks": [
            {
                "name": "per",
                "kind": "shell",
                "command": ["sh", "-c", "exit {{ item }}"],
                "each": [1, 0, 0],
                "allow_failure": True,
                "max_parallel": 1,
            },
            {"name": "after", "kind": "noop"},
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed"
    tasks = by_name(await service.get_tasks(run.id))
    assert [tasks[f"per[{i}]"].status for i in range(3)] == ["failed", "completed", "completed"]
    assert tasks["after"].status == "completed"


@pytest.fixture
async def wide_service(store_url: str) -> AsyncIterator[EngineService]:
    """A node whose worker takes 64 tasks at once (a realistic pool for tiny tasks)."""
    node = Node(settings_for(store_url, queues={"default": 64}), ["coordinator", "worker"])
    svc = await node.start()
    try:
        yield svc
    finally:
        await node.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)
# ~3 minutes per store on a loaded 2-core machine; PostgreSQL's fan-out path (expand, claim,
# fan-in) is covered by the four small fan-out tests above, so this scale run stays on SQLite.
@SQLITE_ONLY
async def test_fan_out_of_ten_thousand_completes(wide_service: EngineService) -> None:
    service = wide_service
    n = 10_000
    doc = {
        "name": "big",
        "tasks": [
            {"name": "per", "kind": "noop", "each": list(range(n))},
            {"name": "count", "kind": "log", "message": "{{ tasks.per.output | length }}"},
        ],
    }
    started = time.perf_counter()
    run = await service.start_run(doc)
    done = await wait_run(service, run.id, timeout=600)
    elapsed = time.perf_counter() - started
    assert done.status == "completed", done.error
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["count"].output == {"message": str(n)}
    assert len(tasks) == n + 2
    print(f"\n10,000-item fan-out on {service.store.url.split(':')[0]}: {elapsed:.1f}s")
