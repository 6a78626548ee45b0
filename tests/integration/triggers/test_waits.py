"""Durable waits: timers, signals, timeouts, and both across a full restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.triggers.conftest import api_client, running_node, wait_for, wait_run
from treadle.engine.service import EngineService
from treadle.store.records import TaskRecord


def chain(name: str, *tasks: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "tasks": list(tasks)}


async def task_named(service: EngineService, run_id: str, name: str) -> TaskRecord:
    return await service.task_by_name(run_id, name)


async def parked(service: EngineService, run_id: str, name: str) -> bool:
    waits = await service.store.list_waits(run_id)
    task = await task_named(service, run_id, name)
    return task.status == "running" and any(w.task_id == task.id for w in waits)


async def test_timer_wait_sleeps_for_its_duration_without_a_worker_attempt(
    store_url: str,
) -> None:
    definition = chain(
        "timer",
        {"name": "first", "kind": "noop"},
        {"name": "pause", "kind": "wait", "seconds": "600ms"},
        {"name": "after", "kind": "log", "message": "woke at {{ tasks.pause.output.woke_at }}"},
    )
    async with running_node(store_url) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id)
        assert done.status == "completed", done.error
        pause = await task_named(service, run.id, "pause")
        assert pause.started_at is not None and pause.finished_at is not None
        waited = (pause.finished_at - pause.started_at).total_seconds()
        assert 0.6 <= waited < 3.0
        woke = datetime.fromisoformat(pause.output["woke_at"])
        assert woke >= datetime.fromisoformat(pause.output["until"])
        attempts = [a for a in await service.get_attempts(run.id) if a.task_id == pause.id]
        assert attempts == []  # never handed to a worker
        assert await service.store.list_waits(run.id) == []


async def test_wait_until_an_iso_time_from_inputs(store_url: str) -> None:
    definition = {
        "name": "until",
        "inputs": {"at": {"type": "string", "required": True}},
        "tasks": [{"name": "hold", "kind": "wait", "until": "{{ inputs.at }}"}],
    }
    at = datetime.now(UTC) + timedelta(seconds=0.8)
    async with running_node(store_url) as service:
        run = await service.start_run(definition, {"at": at.isoformat().replace("+00:00", "Z")})
        done = await wait_run(service, run.id)
        assert done.status == "completed", done.error
        hold = await task_named(service, run.id, "hold")
        assert hold.finished_at is not None and hold.finished_at >= at


async def test_bad_until_fails_the_task_with_a_clear_error(store_url: str) -> None:
    definition = chain("bad-until", {"name": "hold", "kind": "wait", "until": "{{ 'soon' }}"})
    async with running_node(store_url) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id)
        assert done.status == "failed"
        hold = await task_named(service, run.id, "hold")
        assert hold.status == "failed"
        assert "not an ISO 8601 time" in (hold.error or "")


async def test_signal_payload_becomes_the_wait_output(store_url: str) -> None:
    definition = chain(
        "approval",
        {"name": "approve", "kind": "wait", "signal": "approve"},
        {"name": "report", "kind": "log", "message": "approved by {{ tasks.approve.output.by }}"},
    )
    async with api_client(store_url) as (client, service):
        created = await client.post("/api/v1/runs", json={"definition": definition})
        run_id = created.json()["id"]
        await wait_for(lambda: parked(service, run_id, "approve"), what="the wait to park")
        listing = (await client.get(f"/api/v1/runs/{run_id}/signals")).json()
        assert listing["items"] == [] and listing["waiting"][0]["signal"] == "approve"
        sent = await client.post(f"/api/v1/runs/{run_id}/signals/approve", json={"by": "ann"})
        assert sent.status_code == 201, sent.text
        assert sent.json()["woke"] == ["approve"]
        done = await wait_run(service, run_id)
        assert done.status == "completed", done.error
        approve = await task_named(service, run_id, "approve")
        assert approve.output == {"by": "ann"}
        report = await task_named(service, run_id, "report")
        assert report.output == {"message": "approved by ann"}
        events = [e.kind for e in await service.list_events(run_id)]
        assert "run.signal" in events


async def test_a_signal_sent_before_the_wait_starts_is_kept(store_url: str) -> None:
    definition = chain(
        "early-signal",
        {"name": "slow", "kind": "sleep", "seconds": 0.4},
        {"name": "gate", "kind": "wait", "signal": "go"},
    )
    async with api_client(store_url) as (client, service):
        run_id = (await client.post("/api/v1/runs", json={"definition": definition})).json()["id"]
        sent = await client.post(f"/api/v1/runs/{run_id}/signals/go", json=[1, 2])
        assert sent.status_code == 201 and sent.json()["woke"] == []
        done = await wait_run(service, run_id)
        assert done.status == "completed", done.error
        gate = await task_named(service, run_id, "gate")
        assert gate.output == {"value": [1, 2]}
        signals = await service.store.list_signals(run_id)
        assert [s.consumed_by for s in signals] == [gate.id]


async def test_each_signal_wakes_one_wait(store_url: str) -> None:
    definition = {
        "name": "two-waiters",
        "tasks": [
            {"name": "a", "kind": "wait", "signal": "tick", "depends_on": []},
            {"name": "b", "kind": "wait", "signal": "tick", "depends_on": []},
        ],
    }
    async with api_client(store_url) as (client, service):
        run_id = (await client.post("/api/v1/runs", json={"definition": definition})).json()["id"]
        await wait_for(lambda: parked(service, run_id, "a"), what="a to park")
        await wait_for(lambda: parked(service, run_id, "b"), what="b to park")
        first = await client.post(f"/api/v1/runs/{run_id}/signals/tick", json={"n": 1})
        assert len(first.json()["woke"]) == 1
        await asyncio.sleep(0.3)
        assert (await service.get_run(run_id)).status == "running"
        await client.post(f"/api/v1/runs/{run_id}/signals/tick", json={"n": 2})
        done = await wait_run(service, run_id)
        assert done.status == "completed"
        outputs = sorted(t.output["n"] for t in await service.get_tasks(run_id))
        assert outputs == [1, 2]


async def test_signal_wait_times_out(store_url: str) -> None:
    definition = chain(
        "no-answer", {"name": "ask", "kind": "wait", "signal": "answer", "timeout": 0.4}
    )
    async with running_node(store_url) as service:
        run = await service.start_run(definition)
        done = await wait_run(service, run.id)
        assert done.status == "failed"
        ask = await task_named(service, run.id, "ask")
        assert ask.error == "timed out waiting for signal 'answer'"


async def test_signal_errors_are_clear(store_url: str) -> None:
    definition = chain("quick", {"name": "n", "kind": "noop"})
    async with api_client(store_url) as (client, service):
        missing = await client.post("/api/v1/runs/nope/signals/go", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        run_id = (await client.post("/api/v1/runs", json={"definition": definition})).json()["id"]
        await wait_run(service, run_id)
        late = await client.post(f"/api/v1/runs/{run_id}/signals/go", json={})
        assert late.status_code == 409
        assert "completed" in late.json()["error"]["message"]
        bad = await client.post(
            f"/api/v1/runs/{run_id}/signals/go",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert bad.status_code == 422
        bad_name = await client.post(f"/api/v1/runs/{run_id}/signals/a%20b", json={})
        assert bad_name.status_code == 422


async def test_timer_wait_survives_a_full_restart(store_url: str) -> None:
    definition = chain(
        "timer-restart",
        {"name": "hold", "kind": "wait", "seconds": 1.0},
        {"name": "after", "kind": "noop"},
    )
    async with running_node(store_url) as first:
        run = await first.start_run(definition)
        await wait_for(lambda: parked(first, run.id, "hold"), what="the wait to park")
        until = datetime.fromisoformat((await first.store.list_waits(run.id))[0].output["until"])
    # Every process is gone; the wake-up time passes while nothing runs.
    await asyncio.sleep(1.2)
    assert datetime.now(UTC) > until
    async with running_node(store_url) as second:
        done = await wait_run(second, run.id)
        assert done.status == "completed", done.error
        hold = await task_named(second, run.id, "hold")
        assert datetime.fromisoformat(hold.output["woke_at"]) >= until


async def test_signal_wait_survives_a_full_restart(store_url: str) -> None:
    definition = chain(
        "signal-restart",
        {"name": "gate", "kind": "wait", "signal": "open"},
        {"name": "after", "kind": "log", "message": "{{ tasks.gate.output.key }}"},
    )
    async with running_node(store_url) as first:
        run = await first.start_run(definition)
        await wait_for(lambda: parked(first, run.id, "gate"), what="the wait to park")
    # Only an API process is up when the signal arrives: it is stored and applied.
    async with api_client(store_url, roles=("api",)) as (client, _):
        sent = await client.post(f"/api/v1/runs/{run.id}/signals/open", json={"key": "v"})
        assert sent.status_code == 201
    async with running_node(store_url) as second:
        done = await wait_run(second, run.id)
        assert done.status == "completed", done.error
        after = await task_named(second, run.id, "after")
        assert after.output == {"message": "v"}
