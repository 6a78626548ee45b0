"""Cron schedules: exactly one run per tick with two coordinators, overlap and catch-up."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any

from tests.integration.triggers.conftest import api_client, running_node, wait_for, wait_run
from treadle.engine.schedules import FIRE_LABEL, SCHEDULE_LABEL, ScheduleRunner, due_ticks
from treadle.engine.service import EngineService
from treadle.store.records import RunRecord

GATED = {
    "name": "gated",
    "tasks": [{"name": "gate", "kind": "wait", "signal": "open"}],
}


async def scheduled_runs(service: EngineService, name: str) -> list[RunRecord]:
    runs, _ = await service.store.list_runs(limit=1000)
    mine = [r for r in runs if r.labels.get(SCHEDULE_LABEL) == name]
    return sorted(mine, key=lambda r: r.labels[FIRE_LABEL])


async def make_due(service: EngineService, name: str, at: datetime) -> None:
    """Pretend the coordinators were away: the next tick was due at ``at``."""
    for _ in range(20):
        schedule = await service.store.get_schedule(name)
        if await service.store.update_schedule(name, schedule.version, {"next_fire_at": at}):
            return
    raise AssertionError("could not move the schedule")


async def test_two_coordinators_start_exactly_one_run_per_tick(store_url: str) -> None:
    definition = {
        "name": "every-second",
        "schedule": {"cron": "* * * * * *", "overlap": "allow", "catchup": "all"},
        "tasks": [{"name": "n", "kind": "noop"}],
    }
    async with (
        running_node(store_url, roles=("coordinator",)) as first,
        running_node(store_url, roles=("coordinator",)) as second,
    ):
        await first.create_definition(definition)
        schedule = await first.store.get_schedule("every-second")
        assert schedule.source == "definition"
        await asyncio.sleep(4.2)
        paused = await second.store.get_schedule("every-second")
        await second.store.update_schedule(paused.name, paused.version, {"paused": True})
        # A tick in flight may have started its run but not yet counted it: wait until the
        # schedule's counter and the runs agree (or give up after 15 s and report both).
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            runs = await scheduled_runs(first, "every-second")
            final = await first.store.get_schedule("every-second")
            if final.fired == len(runs) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
    fire_times = [datetime.fromisoformat(r.labels[FIRE_LABEL]) for r in runs]
    assert len(fire_times) >= 3
    assert len(set(fire_times)) == len(fire_times), "a tick started two runs"
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fire_times)}
    assert gaps == {1.0}, f"ticks were missed or doubled: {fire_times}"
    assert final.fired == len(runs)
    assert all(r.definition_name == "every-second" for r in runs)


async def test_catchup_all_latest_none(store_url: str) -> None:
    async with running_node(store_url, roles=()) as service:
        await service.create_definition({"name": "n", "tasks": [{"name": "n", "kind": "noop"}]})
        runner = ScheduleRunner(service.store, service.start_run)
        hour_ago = (await service.store.now()) - timedelta(hours=1)
        expected: dict[str, int] = {}
        async with api_client(store_url, roles=("api",)) as (client, _):
            for policy in ("all", "latest", "none"):
                body = {
                    "name": f"c-{policy}",
                    "definition": "n",
                    "cron": "* * * * *",
                    "catchup": policy,
                    "overlap": "allow",  # runs stay active here: no worker
                    "grace": 1,
                }
                assert (await client.post("/api/v1/schedules", json=body)).status_code == 201
                await make_due(service, f"c-{policy}", hour_ago.replace(second=0, microsecond=0))
                schedule = await service.store.get_schedule(f"c-{policy}")
                ticks, _ = due_ticks(schedule, await service.store.now())
                expected[policy] = len(ticks)
        assert expected["all"] >= 60
        first_fire = await service.store.now()
        await runner.fire_due()
        now = await service.store.now()
        before = {n: await scheduled_runs(service, f"c-{n}") for n in ("all", "latest", "none")}
        await runner.fire_due()  # nothing older is fired again (only a tick that just came due)
        for name, runs in before.items():
            # Up to the last tick the first firing covered (a minute may turn in between: the
            # second firing may then rightly start the tick that just came due).
            fired = [datetime.fromisoformat(r.labels[FIRE_LABEL]) for r in runs]
            cutoff = max(fired) if fired else first_fire
            again = await scheduled_runs(service, f"c-{name}")
            old = [r for r in again if datetime.fromisoformat(r.labels[FIRE_LABEL]) <= cutoff]
            assert [r.id for r in old] == [r.id for r in runs]
        for_all, latest, none = before["all"], before["latest"], before["none"]
        assert len(for_all) in (expected["all"], expected["all"] + 1)  # a minute may turn
        assert len({r.labels[FIRE_LABEL] for r in for_all}) == len(for_all)
        assert len(latest) == 1
        assert now - datetime.fromisoformat(latest[0].labels[FIRE_LABEL]) < timedelta(minutes=1)
        # "none" skips every missed tick; only a tick that came due during the firing (a minute
        # turned, within the grace of 1 s) may have started.
        assert len(none) <= 1
        fresh = first_fire - timedelta(seconds=1)
        assert all(datetime.fromisoformat(r.labels[FIRE_LABEL]) >= fresh for r in none), none
        skipped = await service.store.get_schedule("c-none")
        assert skipped.skipped >= 60
        assert skipped.fired == len(await scheduled_runs(service, "c-none"))  # 0, or a fresh tick
        assert skipped.next_fire_at is not None and skipped.next_fire_at > now


async def _two_ticks(service: EngineService, name: str) -> tuple[RunRecord, list[RunRecord]]:
    """Fire one tick, wait for its run to park on its wait, then fire a second tick."""
    store = service.store
    await make_due(service, name, (await store.now()) - timedelta(seconds=1))
    runs = await wait_for(lambda: scheduled_runs(service, name), what="the first tick")
    first = runs[0]

    async def parked() -> bool:
        return bool(await store.list_waits(first.id))

    await wait_for(parked, what="the first run to wait")

    async def moved() -> bool:
        return (await store.get_schedule(name)).next_fire_at > await store.now()  # type: ignore[operator]

    await make_due(service, name, (await store.now()) - timedelta(seconds=0.5))
    await wait_for(moved, what="the second tick")
    await asyncio.sleep(0.3)
    return first, await scheduled_runs(service, name)


async def _schedule(client: Any, name: str, overlap: str) -> None:
    body = {
        "name": name,
        "definition": "gated",
        "cron": "0 0 1 1 *",
        "overlap": overlap,
        "catchup": "latest",
    }
    response = await client.post("/api/v1/schedules", json=body)
    assert response.status_code == 201, response.text


async def test_overlap_skip_queue_allow(store_url: str) -> None:
    async with api_client(store_url) as (client, service):
        await service.create_definition(GATED)
        for policy in ("skip", "queue", "allow"):
            await _schedule(client, f"o-{policy}", policy)

        first, runs = await _two_ticks(service, "o-skip")
        assert [r.id for r in runs] == [first.id]
        assert (await service.store.get_schedule("o-skip")).skipped == 1

        first, runs = await _two_ticks(service, "o-allow")
        assert len(runs) == 2
        second = next(r for r in runs if r.id != first.id)
        await wait_for(lambda: service.store.list_waits(second.id), what="both allowed runs to run")

        first, runs = await _two_ticks(service, "o-queue")
        assert len(runs) == 2
        queued = next(r for r in runs if r.id != first.id)
        assert (await service.get_run(queued.id)).status == "pending"
        sent = await client.post(f"/api/v1/runs/{first.id}/signals/open", json={})
        assert sent.status_code == 201
        done = await wait_run(service, first.id)
        await wait_for(lambda: service.store.list_waits(queued.id), what="the queued run")

        async def running() -> RunRecord | None:
            run = await service.get_run(queued.id)
            return run if run.status == "running" else None

        started = await wait_for(running, what="the queued run to start")
        assert started.started_at is not None and done.finished_at is not None
        assert started.started_at >= done.finished_at


async def test_schedule_api(store_url: str) -> None:
    async with api_client(store_url, roles=("api",)) as (client, service):
        await service.create_definition(
            {
                "name": "report",
                "inputs": {"day": {"type": "string", "required": True}},
                "tasks": [{"name": "n", "kind": "noop"}],
            }
        )
        body = {
            "name": "nightly",
            "definition": "report",
            "cron": "30 2 * * *",
            "timezone": "Europe/Paris",
            "inputs": {"day": "today"},
        }
        created = await client.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["overlap"] == "skip" and view["catchup"] == "none"
        next_fire = datetime.fromisoformat(view["next_fire_at"])
        assert next_fire.utcoffset() == timedelta(0)
        assert next_fire.hour in (0, 1)  # 02:30 in Paris is 00:30 or 01:30 UTC
        assert (await client.post("/api/v1/schedules", json=body)).status_code == 409
        for bad, field in (
            ({**body, "name": "b1", "cron": "61 * * * *"}, "cron"),
            ({**body, "name": "b2", "timezone": "Mars/Olympus"}, "timezone"),
            ({**body, "name": "b3", "overlap": "sometimes"}, "overlap"),
            ({**body, "name": "b4", "inputs": {}}, "day"),
        ):
            response = await client.post("/api/v1/schedules", json=bad)
            assert response.status_code == 422, response.text
            assert field in response.json()["error"]["message"]
        missing = await client.post("/api/v1/schedules", json={**body, "definition": "nope"})
        assert missing.status_code == 404
        listing = (await client.get("/api/v1/schedules")).json()["items"]
        assert [s["name"] for s in listing] == ["nightly"]
        paused = (await client.post("/api/v1/schedules/nightly/pause")).json()
        assert paused["paused"] is True and paused["next_fire_at"] is None
        assert (await service.store.due_schedules(next_fire + timedelta(days=1))) == []
        resumed = (await client.post("/api/v1/schedules/nightly/unpause")).json()
        assert resumed["paused"] is False and resumed["next_fire_at"] is not None
        assert (await client.delete("/api/v1/schedules/nightly")).status_code == 204
        assert (await client.get("/api/v1/schedules/nightly")).status_code == 404
        assert (await client.delete("/api/v1/schedules/nightly")).status_code == 404


async def test_definition_schedule_follows_the_latest_version(store_url: str) -> None:
    async with running_node(store_url, roles=()) as service:
        doc: dict[str, Any] = {
            "name": "etl",
            # Two daily times: their next fires differ whatever the time of day the test runs.
            "schedule": {"cron": "0 3 * * *", "timezone": "UTC"},
            "tasks": [{"name": "n", "kind": "noop"}],
        }
        await service.create_definition(doc)
        first = await service.store.get_schedule("etl")
        assert (first.cron, first.source) == ("0 3 * * *", "definition")
        await service.create_definition({**doc, "schedule": {"cron": "30 15 * * *"}})
        changed = await service.store.get_schedule("etl")
        assert changed.cron == "30 15 * * *" and changed.next_fire_at != first.next_fire_at
        await service.create_definition({k: v for k, v in doc.items() if k != "schedule"})
        assert await service.store.list_schedules() == []


async def test_runs_started_while_the_schedule_is_paused_are_still_counted(
    store_url: str,
) -> None:
    """A coordinator starts a tick's run, then an operator pauses the schedule before the
    coordinator records the tick: the pause must not make the run go uncounted."""
    definition = {
        "name": "counted",
        "schedule": {"cron": "* * * * * *", "overlap": "allow", "catchup": "latest"},
        "tasks": [{"name": "n", "kind": "noop"}],
    }
    async with running_node(store_url, roles=()) as service:
        await service.create_definition(definition)
        await make_due(service, "counted", (await service.store.now()) - timedelta(seconds=2))

        async def start_then_pause(*args: Any, **kwargs: Any) -> Any:
            run = await service.start_run(*args, **kwargs)
            schedule = await service.store.get_schedule("counted")
            assert await service.store.update_schedule(
                "counted", schedule.version, {"paused": True}
            )
            return run

        assert await ScheduleRunner(service.store, start_then_pause).fire_due() == 1
        final = await service.store.get_schedule("counted")
        assert final.paused
        assert final.fired == len(await scheduled_runs(service, "counted")) == 1
