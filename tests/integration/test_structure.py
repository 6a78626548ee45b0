"""Layers, priorities, pre/post steps and subworkflows end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import BOTH_STORES, by_name, settings_for, wait_api, wait_run
from tests.integration.helpers import PY
from treadle.engine.node import Node
from treadle.engine.service import EngineService

pytestmark = BOTH_STORES


def _stamp(path: Path, label: str) -> list[str]:
    code = f"import time; open({str(path)!r}, 'a').write({label!r} + '\\n'); time.sleep(0.2)"
    return [PY, "-c", code]


async def test_layers_run_in_priority_order(service: EngineService, tmp_path: Path) -> None:
    log = tmp_path / "order"
    doc = {
        "name": "layers",
        "layers": [
            {"name": "prepare", "priority": 0},
            {"name": "also-prepare", "priority": 0},
            {"name": "empty", "priority": 5},
            {"name": "render", "priority": 10},
        ],
        "tasks": [
            {"name": "r", "kind": "shell", "command": _stamp(log, "render"), "layer": "render"},
            {
                "name": "p1",
                "kind": "shell",
                "command": _stamp(log, "prepare"),
                "layer": "prepare",
                "depends_on": [],
            },
            {
                "name": "p2",
                "kind": "shell",
                "command": _stamp(log, "prepare"),
                "layer": "also-prepare",
                "depends_on": [],
            },
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed", done.error
    assert log.read_text().split() == ["prepare", "prepare", "render"]
    layers = {layer.name: layer for layer in await service.store.get_layers(run.id)}
    assert {n: la.status for n, la in layers.items()} == dict.fromkeys(layers, "completed")
    assert layers["render"].started_at >= layers["prepare"].finished_at
    assert layers["render"].started_at >= layers["also-prepare"].finished_at


async def test_failed_layer_blocks_higher_layers(service: EngineService) -> None:
    doc = {
        "name": "layers-fail",
        "layers": [{"name": "a", "priority": 0}, {"name": "b", "priority": 1}],
        "tasks": [
            {"name": "bad", "kind": "shell", "command": ["false"], "layer": "a"},
            {"name": "later", "kind": "noop", "layer": "b", "depends_on": []},
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["later"].status == "cancelled"
    assert "layer 'a' failed" in (tasks["later"].error or "")


async def test_add_tasks_to_layer_until_it_starts(api: httpx.AsyncClient) -> None:
    doc = {
        "name": "grow",
        "layers": [
            {"name": "first", "priority": 0},
            {"name": "second", "priority": 1, "paused": True},
        ],
        "tasks": [{"name": "a", "kind": "noop", "layer": "first"}],
    }
    run = (await api.post("/api/v1/runs", json={"definition": doc})).json()
    second = next(la for la in run["layers"] if la["name"] == "second")
    added = await api.post(
        f"/api/v1/layers/{second['id']}/tasks",
        json=[
            {"name": "x", "kind": "log", "message": "from x"},
            {"name": "y", "kind": "noop", "depends_on": ["x"]},
        ],
    )
    assert added.status_code == 201, added.text
    assert [t["name"] for t in added.json()["items"]] == ["x", "y"]
    bad = await api.post(f"/api/v1/layers/{second['id']}/tasks", json={"name": "a", "kind": "noop"})
    assert (
        bad.status_code == 422 and "already has a task named 'a'" in bad.json()["error"]["message"]
    )
    await asyncio.sleep(0.6)
    layer = (await api.get(f"/api/v1/layers/{second['id']}")).json()
    assert layer["status"] == "paused" and [t["status"] for t in layer["tasks"]] == ["pending"] * 2
    response = await api.post(
        f"/api/v1/layers/{second['id']}/unpause", headers={"If-Match": layer["etag"]}
    )
    assert response.status_code == 200, response.text
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed"
    names = {t["name"]: t for t in done["tasks"]}
    assert names["x"]["output"] == {"message": "from x"} and names["y"]["status"] == "completed"
    late = await api.post(
        f"/api/v1/layers/{second['id']}/tasks", json={"name": "z", "kind": "noop"}
    )
    assert late.status_code == 409


async def test_layer_skip_lets_higher_layers_run(api: httpx.AsyncClient) -> None:
    doc = {
        "name": "skip-layer",
        "layers": [{"name": "a", "priority": 0, "paused": True}, {"name": "b", "priority": 1}],
        "tasks": [
            {"name": "ta", "kind": "noop", "layer": "a"},
            {"name": "tb", "kind": "noop", "layer": "b"},
        ],
    }
    run = (await api.post("/api/v1/runs", json={"definition": doc})).json()
    a = next(la for la in run["layers"] if la["name"] == "a")
    response = await api.post(f"/api/v1/layers/{a['id']}/skip", headers={"If-Match": a["etag"]})
    assert response.status_code == 200, response.text
    done = await wait_api(api, run["id"])
    names = {t["name"]: t["status"] for t in done["tasks"]}
    assert names == {"ta": "skipped", "tb": "completed"} and done["status"] == "completed"


@pytest.fixture
async def one_slot(store_url: str) -> AsyncIterator[EngineService]:
    node = Node(settings_for(store_url, queues={"default": 1}), ["coordinator", "worker"])
    svc = await node.start()
    try:
        yield svc
    finally:
        await node.stop()


async def test_higher_priority_dispatched_first(one_slot: EngineService, tmp_path: Path) -> None:
    service = one_slot
    log = tmp_path / "order"
    gate = tmp_path / "gate"
    wait_gate = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)"
    blocker = await service.start_run(
        {
            "name": "blocker",
            "tasks": [{"name": "b", "kind": "shell", "command": [PY, "-c", wait_gate]}],
        }
    )
    while (await service.task_by_name(blocker.id, "b")).status != "running":
        await asyncio.sleep(0.05)
    runs = []
    for label, priority in [("low1", 0), ("low2", 0), ("high", 10), ("mid", 5)]:
        doc = {
            "name": label,
            "tasks": [
                {"name": "t", "kind": "shell", "command": _stamp(log, label), "priority": priority}
            ],
        }
        runs.append(await service.start_run(doc))
    await asyncio.sleep(1.0)  # all four are queued behind the blocker
    gate.write_text("")
    for run in runs:
        await wait_run(service, run.id)
    assert log.read_text().split() == ["high", "mid", "low1", "low2"]


async def test_pre_and_post_share_workdir_and_post_sees_failure(
    service: EngineService, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    doc = {
        "name": "steps",
        "tasks": [
            {
                "name": "main",
                "kind": "shell",
                "command": ["sh", "-c", "cat prepared.txt; exit 3"],
                "pre": [{"kind": "shell", "command": ["sh", "-c", "echo ready > prepared.txt"]}],
                "post": [
                    {
                        "kind": "shell",
                        "command": [
                            "sh",
                            "-c",
                            'echo "{{ main.status }} {{ main.output.exit_code }} '
                            '$TREADLE_MAIN_STATUS $(cat prepared.txt) {{ inputs.who }}" > '
                            + str(seen),
                        ],
                    }
                ],
            }
        ],
        "inputs": {"who": {"type": "string", "default": "ops"}},
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    task = by_name(await service.get_tasks(run.id))["main"]
    assert task.output["stdout"].strip() == "ready"  # the pre step's file, same directory
    assert "exited with code 3" in (task.error or "")
    assert seen.read_text().split() == ["failed", "3", "failed", "ready", "ops"]


async def test_failing_pre_step_skips_main_and_runs_post(
    service: EngineService, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    doc = {
        "name": "pre-fail",
        "tasks": [
            {
                "name": "t",
                "kind": "shell",
                "command": _stamp(marks, "main"),
                "pre": [{"kind": "shell", "command": ["false"]}],
                "post": [{"kind": "shell", "command": _stamp(marks, "post")}],
            }
        ],
    }
    run = await service.start_run(doc)
    assert (await wait_run(service, run.id)).status == "failed"
    task = by_name(await service.get_tasks(run.id))["t"]
    assert "pre step 'pre[0]' failed" in (task.error or "")
    assert marks.read_text().split() == ["post"]


async def test_subworkflow_returns_child_outputs(service: EngineService) -> None:
    await service.create_definition(
        {
            "name": "child",
            "inputs": {"n": {"type": "integer", "required": True}},
            "tasks": [{"name": "calc", "kind": "log", "message": "{{ inputs.n * 2 }}"}],
        }
    )
    doc = {
        "name": "parent",
        "tasks": [
            {"name": "sub", "kind": "subworkflow", "definition": "child", "inputs": {"n": 21}},
            {"name": "use", "kind": "log", "message": "got {{ tasks.sub.output.calc.message }}"},
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed", done.error
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["use"].output == {"message": "got 42"}
    children, _ = await service.store.list_runs(definition="child")
    assert len(children) == 1 and children[0].parent_id == run.id


async def test_subworkflow_failure_and_missing_definition(service: EngineService) -> None:
    await service.create_definition(
        {"name": "broken", "tasks": [{"name": "x", "kind": "shell", "command": ["false"]}]}
    )
    doc = {
        "name": "p2",
        "tasks": [
            {"name": "a", "kind": "subworkflow", "definition": "broken", "depends_on": []},
            {"name": "b", "kind": "subworkflow", "definition": "nope", "depends_on": []},
        ],
    }
    run = await service.start_run(doc)
    assert (await wait_run(service, run.id)).status == "failed"
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["a"].status == "failed" and "subworkflow run" in (tasks["a"].error or "")
    assert tasks["b"].status == "failed"
    assert "cannot start subworkflow: no definition 'nope'" in (tasks["b"].error or "")


async def test_subworkflow_recursion_stops_at_depth_limit(service: EngineService) -> None:
    await service.create_definition(
        {"name": "loop", "tasks": [{"name": "again", "kind": "subworkflow", "definition": "loop"}]}
    )
    run = await service.start_run("loop")
    done = await wait_run(service, run.id, timeout=60)
    assert done.status == "failed"
    runs, _ = await service.store.list_runs(definition="loop", limit=100)
    assert len(runs) == 11  # the first run plus 10 nested ones
    deepest = [r for r in runs if r.labels.get("depth") == 10]
    assert len(deepest) == 1
    task = by_name(await service.get_tasks(deepest[0].id))["again"]
    assert "depth limit 10" in (task.error or "")


async def test_kill_subworkflow_task_kills_child_run(api: httpx.AsyncClient) -> None:
    child: dict[str, Any] = {
        "name": "slow-child",
        "tasks": [{"name": "s", "kind": "sleep", "seconds": 60}],
    }
    assert (await api.post("/api/v1/definitions", json=child)).status_code == 201
    doc = {
        "name": "sp",
        "tasks": [{"name": "sub", "kind": "subworkflow", "definition": "slow-child"}],
    }
    run = (await api.post("/api/v1/runs", json={"definition": doc})).json()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        view = (await api.get(f"/api/v1/runs/{run['id']}")).json()
        sub = view["tasks"][0]
        if isinstance(sub["output"], dict) and sub["output"].get("run_id"):
            break
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    response = await api.post(f"/api/v1/tasks/{sub['id']}/kill", headers={"If-Match": sub["etag"]})
    assert response.status_code == 200, response.text
    child_run = await wait_api(api, sub["output"]["run_id"])
    assert child_run["status"] == "cancelled"
    assert (await wait_api(api, run["id"]))["status"] == "failed"
