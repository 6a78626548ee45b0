"""Operator control over the API: each operation on runs, layers and tasks, etags, bulk, events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import BOTH_STORES, wait_api
from tests.integration.conftest import wait_task as wait_task_status
from tests.integration.helpers import PY, pid_alive, sleeper_script, wait_for_file, wait_gone
from treadle.engine.service import EngineService
from treadle.errors import Conflict
from treadle.store.records import RunRecord

pytestmark = BOTH_STORES


async def start(client: httpx.AsyncClient, doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/runs", json={"definition": doc, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def get(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/api/v1/runs/{run_id}")).json())


def task_of(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in run["tasks"] if t["name"] == name)


async def wait_task(
    client: httpx.AsyncClient, run_id: str, name: str, status: str, timeout: float = 20
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task = task_of(await get(client, run_id), name)
        if task["status"] == status:
            return task
        assert loop.time() < deadline, f"{name} is {task['status']}, wanted {status}"
        await asyncio.sleep(0.05)


async def op(
    client: httpx.AsyncClient, kind: str, target: str, name: str, etag: str | None = None
) -> httpx.Response:
    headers = {"X-Treadle-Actor": "alice"}
    if etag is not None:
        headers["If-Match"] = etag
    return await client.post(f"/api/v1/{kind}/{target}/{name}", headers=headers)


def sleeper_doc(pidfile: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "sleepy",
        "tasks": [
            {"name": "slow", "kind": "shell", "command": sleeper_script(pidfile)},
            {"name": "after", "kind": "noop"},
        ],
        **extra,
    }


async def test_kill_running_shell_task_stops_the_process(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    run = await start(api, sleeper_doc(pidfile))
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    task = await wait_task(api, run["id"], "slow", "running")
    response = await op(api, "tasks", task["id"], "kill", task["etag"])
    assert response.status_code == 200, response.text
    for pid in pids:
        seconds = await wait_gone(pid, timeout=6)
        assert seconds < 6
    done = await wait_api(api, run["id"])
    assert done["status"] == "failed"
    assert task_of(done, "slow")["status"] == "cancelled"
    assert task_of(done, "slow")["error"] == "killed by alice"
    assert task_of(done, "after")["status"] == "cancelled"


async def test_stale_etag_is_409_and_changes_nothing(api: httpx.AsyncClient) -> None:
    run = await start(api, {"name": "p", "tasks": [{"name": "a", "kind": "sleep", "seconds": 30}]})
    task = await wait_task(api, run["id"], "a", "running")
    stale = str(int(task["etag"]) - 1)
    response = await op(api, "tasks", task["id"], "kill", stale)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert task_of(await get(api, run["id"]), "a")["status"] == "running"
    response = await op(api, "runs", run["id"], "kill", 'W/"999"')
    assert response.status_code == 409
    assert (await get(api, run["id"]))["status"] == "running"
    assert (await op(api, "runs", run["id"], "kill")).status_code == 200


async def test_two_operators_same_etag_one_wins(api: httpx.AsyncClient) -> None:
    run = await start(
        api, {"name": "race", "tasks": [{"name": "a", "kind": "sleep", "seconds": 30}]}
    )
    await wait_task(api, run["id"], "a", "running")
    current = await get(api, run["id"])
    results = await asyncio.gather(
        op(api, "runs", run["id"], "pause", current["etag"]),
        op(api, "runs", run["id"], "pause", current["etag"]),
        op(api, "runs", run["id"], "kill", current["etag"]),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409], [r.text for r in results]
    events = (await api.get(f"/api/v1/runs/{run['id']}/events")).json()["items"]
    control = [e for e in events if e["actor"] == "alice"]
    assert len(control) == 1
    await op(api, "runs", run["id"], "kill")


async def test_pause_and_unpause_run(api: httpx.AsyncClient, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    doc = {
        "name": "pausing",
        "tasks": [
            {
                "name": "first",
                "kind": "shell",
                "command": [
                    PY,
                    "-c",
                    f"import time,os\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)",
                ],
            },
            {"name": "second", "kind": "noop"},
        ],
    }
    run = await start(api, doc)
    await wait_task(api, run["id"], "first", "running")
    current = await get(api, run["id"])
    assert (await op(api, "runs", run["id"], "pause", current["etag"])).status_code == 200
    flag.write_text("1")
    await wait_task(api, run["id"], "first", "completed")
    await asyncio.sleep(0.8)
    paused = await get(api, run["id"])
    assert paused["status"] == "paused"
    assert task_of(paused, "second")["status"] == "pending"  # nothing new starts
    assert (await op(api, "runs", run["id"], "pause")).status_code == 409  # already paused
    assert (await op(api, "runs", run["id"], "unpause", paused["etag"])).status_code == 200
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed"


async def test_run_created_paused_starts_on_unpause(api: httpx.AsyncClient) -> None:
    run = await start(api, {"name": "cp", "tasks": [{"name": "a", "kind": "noop"}]}, paused=True)
    await asyncio.sleep(0.6)
    current = await get(api, run["id"])
    assert current["status"] == "paused" and task_of(current, "a")["status"] == "pending"
    assert (await op(api, "runs", run["id"], "unpause", current["etag"])).status_code == 200
    assert (await wait_api(api, run["id"]))["status"] == "completed"


async def test_task_created_paused_then_unpaused(api: httpx.AsyncClient) -> None:
    doc = {
        "name": "tp",
        "tasks": [{"name": "a", "kind": "noop", "paused": True}, {"name": "b", "kind": "noop"}],
    }
    run = await start(api, doc)
    await asyncio.sleep(0.6)
    current = await get(api, run["id"])
    assert task_of(current, "a")["status"] == "paused"
    assert task_of(current, "b")["status"] == "pending"
    a = task_of(current, "a")
    assert (await op(api, "tasks", a["id"], "unpause", a["etag"])).status_code == 200
    assert (await wait_api(api, run["id"]))["status"] == "completed"


async def test_pause_pending_task_blocks_until_unpause(api: httpx.AsyncClient) -> None:
    doc = {
        "name": "pt",
        "tasks": [{"name": "a", "kind": "sleep", "seconds": 0.8}, {"name": "b", "kind": "noop"}],
    }
    run = await start(api, doc)
    b = await wait_task(api, run["id"], "b", "pending")
    assert (await op(api, "tasks", b["id"], "pause", b["etag"])).status_code == 200
    await wait_task(api, run["id"], "a", "completed")
    await asyncio.sleep(0.6)
    assert (await get(api, run["id"]))["status"] == "running"
    b = task_of(await get(api, run["id"]), "b")
    assert b["status"] == "paused"
    assert (await op(api, "tasks", b["id"], "unpause", b["etag"])).status_code == 200
    assert (await wait_api(api, run["id"]))["status"] == "completed"


async def test_retry_failed_task_runs_again_and_run_completes(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    marker = tmp_path / "ok"
    doc = {
        "name": "rt",
        "tasks": [
            {"name": "up", "kind": "shell", "command": ["echo", "upstream"]},
            {"name": "flaky", "kind": "shell", "command": ["test", "-e", str(marker)]},
            {"name": "down", "kind": "shell", "command": ["echo", "{{ tasks.up.output.stdout }}"]},
        ],
    }
    run = await start(api, doc)
    failed = await wait_api(api, run["id"])
    assert failed["status"] == "failed"
    flaky = task_of(failed, "flaky")
    assert flaky["status"] == "failed" and task_of(failed, "down")["status"] == "cancelled"
    up_attempts = task_of(failed, "up")["attempt_count"]
    marker.write_text("")
    assert (await op(api, "tasks", flaky["id"], "retry", flaky["etag"])).status_code == 200
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed", done["error"]
    flaky = task_of(done, "flaky")
    assert [a["status"] for a in flaky["attempts"]] == ["failed", "completed"]
    assert task_of(done, "up")["attempt_count"] == up_attempts  # upstream kept
    assert task_of(done, "down")["output"]["stdout"].strip() == "upstream"


async def test_retry_failed_run(api: httpx.AsyncClient, tmp_path: Path) -> None:
    marker = tmp_path / "ok"
    doc = {
        "name": "rr",
        "tasks": [{"name": "t", "kind": "shell", "command": ["test", "-e", str(marker)]}],
    }
    run = await start(api, doc)
    failed = await wait_api(api, run["id"])
    marker.write_text("")
    assert (await op(api, "runs", run["id"], "retry", failed["etag"])).status_code == 200
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed" and done["error"] is None
    assert (await op(api, "runs", run["id"], "retry")).status_code == 409  # nothing failed


async def test_skip_failed_task_counts_as_done(api: httpx.AsyncClient) -> None:
    doc = {
        "name": "sk",
        "tasks": [
            {"name": "bad", "kind": "shell", "command": ["false"]},
            {"name": "next", "kind": "noop"},
        ],
    }
    run = await start(api, doc)
    failed = await wait_api(api, run["id"])
    bad = task_of(failed, "bad")
    assert (await op(api, "tasks", bad["id"], "skip", bad["etag"])).status_code == 200
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed"
    assert task_of(done, "bad")["status"] == "skipped"
    assert task_of(done, "next")["status"] == "completed"


async def test_skip_running_task_kills_it(api: httpx.AsyncClient, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    run = await start(api, sleeper_doc(pidfile))
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    slow = await wait_task(api, run["id"], "slow", "running")
    assert (await op(api, "tasks", slow["id"], "skip", slow["etag"])).status_code == 200
    for pid in pids:
        await wait_gone(pid)
    done = await wait_api(api, run["id"])
    assert done["status"] == "completed"
    assert task_of(done, "after")["status"] == "completed"


async def test_rerun_task_resets_downstream_keeps_upstream(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    counter = tmp_path / "n"
    count = (
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        "n = int(p.read_text() if p.exists() else 0) + 1; p.write_text(str(n)); print(n)"
    )
    doc = {
        "name": "rerun",
        "tasks": [
            {"name": "a", "kind": "shell", "command": ["echo", "a"]},
            {"name": "b", "kind": "shell", "command": [PY, "-c", count]},
            {"name": "c", "kind": "log", "message": "b said {{ tasks.b.output.stdout | trim }}"},
        ],
    }
    run = await start(api, doc)
    first = await wait_api(api, run["id"])
    assert task_of(first, "c")["output"]["message"] == "b said 1"
    b = task_of(first, "b")
    assert (await op(api, "tasks", b["id"], "rerun", b["etag"])).status_code == 200
    second = await wait_api(api, run["id"])
    assert second["status"] == "completed"
    assert task_of(second, "c")["output"]["message"] == "b said 2"
    assert task_of(second, "a")["attempt_count"] == 1  # upstream not run again
    assert task_of(second, "b")["attempt_count"] == 2  # every attempt kept
    assert len(task_of(second, "b")["attempts"]) == 2


async def test_rerun_run_runs_everything_again(api: httpx.AsyncClient) -> None:
    run = await start(
        api,
        {"name": "rr2", "tasks": [{"name": "a", "kind": "noop"}, {"name": "b", "kind": "noop"}]},
    )
    done = await wait_api(api, run["id"])
    assert (await op(api, "runs", run["id"], "rerun", done["etag"])).status_code == 200
    again = await wait_api(api, run["id"])
    assert again["status"] == "completed"
    assert [t["attempt_count"] for t in again["tasks"]] == [2, 2]


async def test_kill_and_skip_run(api: httpx.AsyncClient, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    run = await start(api, sleeper_doc(pidfile))
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    current = await get(api, run["id"])
    assert (await op(api, "runs", run["id"], "kill", current["etag"])).status_code == 200
    for pid in pids:
        await wait_gone(pid)
    killed = await get(api, run["id"])
    assert killed["status"] == "cancelled" and killed["error"] == "killed by alice"
    # A killed run can be skipped: it then counts as done.
    assert (await op(api, "runs", run["id"], "skip", killed["etag"])).status_code == 200
    skipped = await get(api, run["id"])
    assert skipped["status"] == "completed"
    assert not any(pid_alive(p) for p in pids)


async def test_bulk_applies_fresh_items_and_counts(api: httpx.AsyncClient) -> None:
    doc = {"name": "bulk", "tasks": [{"name": "a", "kind": "sleep", "seconds": 30}]}
    runs = [await start(api, doc) for _ in range(3)]
    for r in runs:
        await wait_task(api, r["id"], "a", "running")
    views = [await get(api, r["id"]) for r in runs]
    items = [
        {"kind": "run", "id": views[0]["id"], "etag": views[0]["etag"]},
        {"kind": "Job", "id": views[1]["id"], "etag": views[1]["etag"]},  # Igor's spelling
        {"kind": "run", "id": views[2]["id"], "etag": "0"},  # stale: left alone
        {"kind": "task", "id": "no-such-task", "etag": "1"},
    ]
    response = await api.patch("/api/v1/pause", json=items)
    assert response.status_code == 200, response.text
    assert response.json() == {"count": 2, "updated": 2}
    statuses = [(await get(api, r["id"]))["status"] for r in runs]
    assert statuses == ["paused", "paused", "running"]
    response = await api.patch("/api/v1/kill", json=[{"kind": "run", "id": r["id"]} for r in runs])
    assert response.json() == {"count": 3, "updated": 3}


async def test_unknown_operation_and_target(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/runs/nope/explode")
    assert response.status_code == 404
    assert "unknown operation" in response.json()["error"]["message"]
    response = await api.post("/api/v1/runs/nope/pause")
    assert response.status_code == 404
    assert (await api.patch("/api/v1/explode", json=[])).status_code == 404


async def test_events_record_who_did_what(api: httpx.AsyncClient) -> None:
    run = await start(api, {"name": "ev", "tasks": [{"name": "a", "kind": "sleep", "seconds": 30}]})
    a = await wait_task(api, run["id"], "a", "running")
    await op(api, "tasks", a["id"], "kill", a["etag"])
    await wait_api(api, run["id"])
    events = (await api.get(f"/api/v1/runs/{run['id']}/events")).json()["items"]
    kill = next(e for e in events if e["kind"] == "task.kill")
    assert kill["actor"] == "alice"
    assert kill["detail"]["id"] == a["id"]
    assert kill["at"]


async def test_unchecked_kill_rereads_a_run_the_engine_moved_meanwhile(
    service: EngineService,
) -> None:
    """The engine's own kills (of a subworkflow's child run) carry no etag: a concurrent write
    by the coordinator between their read and their compare-and-set must not make them give up.
    """
    run = await service.start_run(
        {"name": "moving", "tasks": [{"name": "s", "kind": "sleep", "seconds": 60}]}
    )
    await wait_task_status(service, run.id, "s", {"running"})
    store = service.store
    real_get_run = store.get_run
    moved: list[int] = []

    async def get_run_then_move(run_id: str) -> RunRecord:
        seen = await real_get_run(run_id)
        if run_id == run.id and len(moved) < 2:
            # Someone else writes right after our read: our copy is now one version behind.
            bumped = await store.update_run(run_id, seen.version, {"labels": {"n": len(moved)}})
            assert bumped is not None
            moved.append(bumped.version)
        return seen

    store.get_run = get_run_then_move  # type: ignore[method-assign]
    try:
        stale = (await real_get_run(run.id)).version
        with pytest.raises(Conflict):  # an operator's etag is still checked
            await service.control.apply("kill", "run", run.id, stale, "operator")
        outcome = await service.control.apply("kill", "run", run.id, None, "engine")
    finally:
        store.get_run = real_get_run  # type: ignore[method-assign]
    assert len(moved) == 2 and outcome.affected >= 1
    assert (await service.get_run(run.id)).status == "cancelled"
