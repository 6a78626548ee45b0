"""The Store contract, part 1: definitions, runs, tasks, compare-and-set, logs, events, workers
and retention. Every test runs on SQLite, PostgreSQL and Redis (see conftest.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.store_records import make_run, make_task, new_id, seed
from treadle.errors import Conflict, NotFound
from treadle.store.base import Store
from treadle.store.records import (
    LIGHT_TASK_FIELDS,
    DefinitionRecord,
    NewLog,
    TaskChange,
    WorkerRecord,
)


async def test_is_a_store_and_answers(store: Store) -> None:
    assert isinstance(store, Store)
    await store.ping()
    await store.migrate()  # a second migration changes nothing
    now = await store.now()
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=30)


# -- definitions --------------------------------------------------------------------------
def definition(name: str, version: int) -> DefinitionRecord:
    doc = {"name": name, "version": version, "tasks": [{"name": "a", "run": "echo ü"}]}
    return DefinitionRecord(name, version, doc, f"name: {name}\nversion: {version}\n")


async def test_definitions_put_get_latest_and_versions(store: Store) -> None:
    for version in (1, 3, 2):
        stored = await store.put_definition(definition("build", version))
        assert stored.created_at is not None
    await store.put_definition(definition("alpha", 1))

    latest = await store.get_definition("build")
    assert latest.version == 3
    assert latest.document == definition("build", 3).document
    assert latest.source == definition("build", 3).source
    assert latest.dialect == "native"
    assert (await store.get_definition("build", 2)).document["version"] == 2
    assert await store.definition_versions("build") == [1, 2, 3]
    assert await store.definition_versions("nothing") == []
    listed = await store.list_definitions()
    assert [(d.name, d.version) for d in listed] == [("alpha", 1), ("build", 3)]


async def test_definition_errors(store: Store) -> None:
    await store.put_definition(definition("build", 1))
    with pytest.raises(Conflict, match="build"):
        await store.put_definition(definition("build", 1))
    with pytest.raises(NotFound):
        await store.get_definition("missing")
    with pytest.raises(NotFound):
        await store.get_definition("build", 7)
    # the failed put left the first version as it was
    assert (await store.get_definition("build")).version == 1


# -- runs and tasks -----------------------------------------------------------------------
async def test_create_run_round_trips_every_field(store: Store) -> None:
    at = (await store.now()).replace(microsecond=123456)
    run = make_run(at, output={"x": [1, 2]}, parent_id=new_id(), error="none yet")
    tasks = [make_task(run.id, i, at, status="pending") for i in (2, 0, 1)]
    await store.create_run(run, tasks)

    assert await store.get_run(run.id) == run
    got = await store.get_tasks(run.id)
    assert [t.seq for t in got] == [0, 1, 2]
    assert got == sorted(tasks, key=lambda t: t.seq)
    assert await store.get_task(tasks[0].id) == tasks[0]
    with pytest.raises(NotFound):
        await store.get_run("nope")
    with pytest.raises(NotFound):
        await store.get_task("nope")
    assert await store.get_tasks("nope") == []


async def test_create_run_records_its_events_with_it(store: Store) -> None:
    at = await store.now()
    run = make_run(at)
    events = [("run.created", "api", {"definition": "demo", "n": [1]}), ("x", "me", {})]
    await store.create_run(run, [make_task(run.id, 0, at, status="pending")], events=events)
    got = await store.list_events(run.id)
    assert [(e.kind, e.actor, e.detail) for e in got] == events
    assert all(abs((e.at - at).total_seconds()) < 5 for e in got)
    # A run that clashes is not written, and neither are its events.
    with pytest.raises(Conflict):
        await store.create_run(run, [], events=[("again", "api", {})])
    assert [e.kind for e in await store.list_events(run.id)] == ["run.created", "x"]


async def test_create_run_is_all_or_nothing(store: Store) -> None:
    run, tasks = await seed(store, 2)
    again_task = make_task(run.id, 5, run.created_at)
    with pytest.raises(Conflict):
        await store.create_run(run, [again_task])
    with pytest.raises(NotFound):
        await store.get_task(again_task.id)

    other = make_run(run.created_at)
    clash = make_task(other.id, 0, run.created_at, task_id=tasks[0].id)
    with pytest.raises(Conflict):
        await store.create_run(other, [make_task(other.id, 1, run.created_at), clash])
    with pytest.raises(NotFound):
        await store.get_run(other.id)
    assert await store.get_tasks(other.id) == []


async def test_add_tasks(store: Store) -> None:
    run, tasks = await seed(store, 1)
    extra = [make_task(run.id, i, run.created_at, status="pending") for i in (1, 2)]
    await store.add_tasks(extra)
    assert [t.id for t in await store.get_tasks(run.id)] == [tasks[0].id] + [t.id for t in extra]
    with pytest.raises(Conflict):
        await store.add_tasks([extra[0]])


async def list_all(store: Store, limit: int, **filters: object) -> list[str]:
    """Walk every page; check each page's size on the way."""
    ids: list[str] = []
    cursor = None
    while True:
        page, cursor = await store.list_runs(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        assert len(page) <= limit
        ids += [r.id for r in page]
        if cursor is None:
            return ids
        assert len(page) == limit


async def test_list_runs_filters_and_pages(store: Store) -> None:
    base = (await store.now()).replace(microsecond=0) - timedelta(hours=1)
    runs = []
    for i in range(120):
        # Pairs share a creation time, so the id has to break ties.
        at = base + timedelta(seconds=i // 2)
        run = make_run(
            at,
            run_id=f"{i % 7}{new_id()[:20]}",
            status=("running", "completed", "failed")[i % 3],
            definition="even" if i % 2 == 0 else "odd",
        )
        runs.append(run)
    await asyncio.gather(*(store.create_run(r, []) for r in runs))
    newest_first = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)

    assert await list_all(store, 25) == [r.id for r in newest_first]
    assert await list_all(store, 120) == [r.id for r in newest_first]
    first, cursor = await store.list_runs(limit=7)
    assert [r.id for r in first] == [r.id for r in newest_first[:7]] and cursor

    def expect(pred: object) -> list[str]:
        return [r.id for r in newest_first if pred(r)]  # type: ignore[operator]

    assert await list_all(store, 9, status="failed") == expect(lambda r: r.status == "failed")
    assert await list_all(store, 10, definition="odd") == expect(
        lambda r: r.definition_name == "odd"
    )
    assert await list_all(store, 4, status="completed", definition="even") == expect(
        lambda r: r.status == "completed" and r.definition_name == "even"
    )
    lo, hi = base + timedelta(seconds=10), base + timedelta(seconds=30)
    assert await list_all(store, 6, created_after=lo, created_before=hi) == expect(
        lambda r: lo <= r.created_at < hi
    )
    assert await list_all(store, 8, id_prefix="3") == expect(lambda r: r.id.startswith("3"))
    assert await list_all(store, 5, id_prefix="3", status="running") == expect(
        lambda r: r.id.startswith("3") and r.status == "running"
    )
    assert await store.list_runs(status="paused") == ([], None)

    assert await store.count_runs() == 120
    assert await store.count_runs(status="failed") == 40


async def test_active_run_ids(store: Store) -> None:
    at = await store.now()
    statuses = ["running", "completed", "pending", "failed", "running", "paused"]
    runs = [make_run(at + timedelta(seconds=i), status=s) for i, s in enumerate(statuses)]
    for run in runs:
        await store.create_run(run, [])
    active = [r.id for r in runs if r.status in ("pending", "running")]
    assert await store.active_run_ids() == active
    assert await store.active_run_ids(limit=2) == active[:2]


async def test_update_run_compare_and_set(store: Store) -> None:
    run, _ = await seed(store)
    now = await store.now()
    done = await store.update_run(
        run.id, 1, {"status": "completed", "finished_at": now, "output": {"n": 1}}
    )
    assert done is not None
    assert (done.version, done.status, done.output, done.finished_at) == (
        2,
        "completed",
        {"n": 1},
        now,
    )
    assert await store.update_run(run.id, 1, {"status": "failed"}) is None
    assert await store.get_run(run.id) == done
    assert await store.update_run("nope", 1, {"status": "failed"}) is None
    # the status indexes follow the change
    assert [r.id for r in (await store.list_runs(status="completed"))[0]] == [run.id]
    assert (await store.list_runs(status="running"))[0] == []
    assert await store.count_runs(status="running") == 0


async def test_one_of_two_concurrent_run_updates_wins(store: Store) -> None:
    run, _ = await seed(store)
    results = await asyncio.gather(
        *(store.update_run(run.id, 1, {"status": s}) for s in ("paused", "cancelled"))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await store.get_run(run.id)).status == winners[0].status
    assert (await store.get_run(run.id)).version == 2


async def test_update_tasks_compare_and_set(store: Store) -> None:
    run, tasks = await seed(store, 3, status="pending")
    a, b, c = (t.id for t in tasks)
    won = await store.update_tasks(
        [
            TaskChange(a, 1, {"status": "skipped", "error": "not needed"}),
            TaskChange(b, 9, {"status": "skipped"}),  # stale
            TaskChange(c, 1, {"rendered": {"run": "echo 2"}}),
        ]
    )
    assert sorted(won) == sorted([a, c])
    got = {t.id: t for t in await store.get_tasks(run.id)}
    assert (got[a].status, got[a].error, got[a].version) == ("skipped", "not needed", 2)
    assert got[b] == tasks[1]
    assert got[c].rendered == {"run": "echo 2"} and got[c].version == 2
    assert await store.update_tasks([TaskChange(a, 1, {"status": "queued"})]) == []
    assert await store.update_tasks([]) == []


async def test_one_of_many_concurrent_task_updates_wins(store: Store) -> None:
    _, tasks = await seed(store, 1, status="pending")
    task_id = tasks[0].id
    results = await asyncio.gather(
        *(store.update_tasks([TaskChange(task_id, 1, {"error": f"w{i}"})]) for i in range(8))
    )
    assert sum(len(r) for r in results) == 1
    task = await store.get_task(task_id)
    assert task.version == 2
    assert task.error == f"w{[len(r) for r in results].index(1)}"


async def test_batches_in_opposite_orders_do_not_deadlock(store: Store) -> None:
    _, tasks = await seed(store, 12, status="pending")
    forward = [TaskChange(t.id, 1, {"error": "forward"}) for t in tasks]
    results = await asyncio.gather(
        *(store.update_tasks(forward if i % 2 == 0 else forward[::-1]) for i in range(6))
    )
    won = [task_id for r in results for task_id in r]
    assert sorted(won) == sorted(t.id for t in tasks)  # each task exactly once, no errors


async def test_task_states_and_outputs(store: Store) -> None:
    run, tasks = await seed(store, 3, status="pending")
    a, b, c = tasks
    await store.update_tasks(
        [
            TaskChange(a.id, 1, {"status": "completed", "output": {"rows": [1, 2]}}),
            TaskChange(b.id, 1, {"status": "failed", "error": "bad", "rendered": {"x": 1}}),
        ]
    )
    states = await store.get_task_states(run.id)
    full = await store.get_tasks(run.id)
    assert [s.id for s in states] == [t.id for t in full]
    for state, task in zip(states, full, strict=True):
        assert (state.spec, state.depends_on, state.rendered, state.output) == ({}, [], None, None)
        light = {k: getattr(task, k) for k in ("status", "version", "error", "seq", "name")}
        assert {k: getattr(state, k) for k in light} == light
        assert (state.created_at, state.available_at) == (task.created_at, task.available_at)
    assert await store.task_outputs(run.id) == {a.id: {"rows": [1, 2]}}
    assert await store.get_task_states("nope") == []
    assert await store.task_outputs("nope") == {}
    assert c.id not in await store.task_outputs(run.id)


LIGHT = list(LIGHT_TASK_FIELDS)


async def test_load_run_state(store: Store) -> None:
    run, tasks = await seed(store, 3, status="pending")
    await store.update_tasks([TaskChange(tasks[1].id, 1, {"status": "completed", "output": [7]})])
    got_run, states, outputs = await store.load_run_state(run.id, with_outputs=True)
    assert got_run == await store.get_run(run.id)
    full = await store.get_tasks(run.id)
    assert states == [{name: getattr(task, name) for name in LIGHT} for task in full]
    assert outputs == {tasks[1].id: [7]}
    assert (await store.load_run_state(run.id, with_outputs=False))[2] is None
    with pytest.raises(NotFound):
        await store.load_run_state("nope", with_outputs=True)


async def test_apply_decision(store: Store) -> None:
    run, tasks = await seed(store, 3, status="pending")
    a, b, c = tasks
    await store.update_tasks([TaskChange(c.id, 1, {"status": "completed"})])
    assert await store.unsettled_run_ids() == [run.id]
    queue_a = {"status": "queued", "available_at": await store.now()}
    won, updated = await store.apply_decision(
        [TaskChange(a.id, 1, queue_a), TaskChange(b.id, 5, {"status": "skipped"})],
        [c.id],
        (run.id, 1, {"status": "paused"}),
        [(run.id, "run.paused", "coordinator", {"why": "test"})],
    )
    assert won == [a.id]
    assert updated is not None and (updated.status, updated.version) == ("paused", 2)
    assert (await store.get_task(a.id)).status == "queued"
    assert (await store.get_task(b.id)).status == "pending"
    assert (await store.get_task(c.id)).settled is True
    assert await store.unsettled_run_ids() == []
    assert [(e.kind, e.detail) for e in await store.list_events(run.id)] == [
        ("run.paused", {"why": "test"})
    ]
    assert [t.id for t in await store.due_tasks(await store.now(), await store.now(), 10)] == [a.id]
    # a stale run version: the run and its events stay as they were, task changes still apply
    won, updated = await store.apply_decision(
        [TaskChange(b.id, 1, {"status": "skipped"})],
        [],
        (run.id, 1, {"status": "cancelled"}),
        [(run.id, "run.cancelled", "coordinator", {})],
    )
    assert (won, updated) == ([b.id], None)
    assert (await store.get_run(run.id)).status == "paused"
    assert len(await store.list_events(run.id)) == 1
    assert await store.apply_decision([], [], None, []) == ([], None)


# -- settling -----------------------------------------------------------------------------
async def test_unsettled_run_ids(store: Store) -> None:
    run1, tasks1 = await seed(store, 2, status="pending")
    run2, tasks2 = await seed(store, 1, status="pending")
    assert await store.unsettled_run_ids() == []
    await store.update_tasks(
        [
            TaskChange(tasks1[0].id, 1, {"status": "completed"}),
            TaskChange(tasks1[1].id, 1, {"status": "failed"}),
            TaskChange(tasks2[0].id, 1, {"status": "queued"}),  # not finished
        ]
    )
    assert await store.unsettled_run_ids() == [run1.id]
    await store.update_tasks([TaskChange(tasks1[0].id, 2, {"settled": True})])
    assert await store.unsettled_run_ids() == [run1.id]  # one finished task left to look at
    await store.mark_settled([tasks1[1].id, "nope"])
    assert (await store.get_task(tasks1[1].id)).version == 2  # bookkeeping, no version bump
    assert (await store.get_task(tasks1[1].id)).settled is True
    assert await store.unsettled_run_ids() == []
    await store.update_tasks([TaskChange(tasks2[0].id, 2, {"status": "cancelled"})])
    assert await store.unsettled_run_ids() == [run2.id]
    assert len(await store.unsettled_run_ids(limit=1)) == 1
    await store.mark_settled([])


# -- logs and events ----------------------------------------------------------------------
async def test_logs_append_and_read(store: Store) -> None:
    run, tasks = await seed(store, 2)
    a, b = tasks[0].id, tasks[1].id
    before = await store.now()
    await store.append_logs(
        [NewLog(run.id, a, "att-1", "stdout", f"line {i} ✓\n") for i in range(5)]
        + [NewLog(run.id, b, None, "stderr", "oops\n")]
    )
    await store.append_logs([NewLog(run.id, a, "att-2", "stderr", "later\n")])
    await store.append_logs([])

    chunks = await store.read_logs(a)
    assert [c.text for c in chunks] == [f"line {i} ✓\n" for i in range(5)] + ["later\n"]
    assert [c.id for c in chunks] == sorted(c.id for c in chunks)
    assert len({c.id for c in chunks}) == 6
    assert chunks[0].task_id == a and chunks[0].attempt_id == "att-1"
    assert chunks[-1].stream == "stderr" and chunks[-1].attempt_id == "att-2"
    assert all(c.at >= before - timedelta(seconds=1) for c in chunks)
    after = await store.read_logs(a, after_id=chunks[2].id)
    assert [c.id for c in after] == [c.id for c in chunks[3:]]
    assert [c.id for c in await store.read_logs(a, after_id=chunks[0].id, limit=2)] == [
        chunks[1].id,
        chunks[2].id,
    ]
    other = await store.read_logs(b)
    assert [(c.text, c.attempt_id, c.stream) for c in other] == [("oops\n", None, "stderr")]
    assert await store.read_logs("nope") == []


async def test_events(store: Store) -> None:
    run, _ = await seed(store)
    await store.add_event(run.id, "run.created", "api", {"by": "ädmin", "n": [1, 2]})
    await store.add_event(run.id, "run.started", "coordinator")
    events = await store.list_events(run.id)
    assert [(e.kind, e.actor, e.detail) for e in events] == [
        ("run.created", "api", {"by": "ädmin", "n": [1, 2]}),
        ("run.started", "coordinator", {}),
    ]
    assert events[0].id < events[1].id
    assert all(e.run_id == run.id for e in events)
    assert await store.list_events("nope") == []


async def test_a_burst_of_events_and_logs(store: Store) -> None:
    # More writers than pooled connections: none may hold one connection while waiting for
    # another (that would starve the pool).
    run, tasks = await seed(store)
    await asyncio.gather(
        *(store.add_event(run.id, "tick", f"actor-{i}", {"i": i}) for i in range(40)),
        *(
            store.append_logs([NewLog(run.id, tasks[0].id, None, "stdout", f"{i}")])
            for i in range(40)
        ),
    )
    events = await store.list_events(run.id)
    assert sorted(e.detail["i"] for e in events) == list(range(40))
    assert sorted(int(c.text) for c in await store.read_logs(tasks[0].id)) == list(range(40))


# -- workers ------------------------------------------------------------------------------
async def test_workers_upsert_and_list(store: Store) -> None:
    now = (await store.now()).replace(microsecond=0)
    first = WorkerRecord("w-b", "host1", {"default": 4}, now, now, capabilities={"gpu": False})
    await store.upsert_worker(first)
    await store.upsert_worker(WorkerRecord("w-a", "host2", {"q": 1}, now, now))
    later = now + timedelta(seconds=30)
    await store.upsert_worker(
        WorkerRecord("w-b", "host1", {"default": 2}, later, later, "draining", 3)
    )
    workers = await store.list_workers()
    assert [w.id for w in workers] == ["w-a", "w-b"]
    b = workers[1]
    assert b.started_at == now  # the first start stays
    assert (b.last_seen, b.status, b.in_flight, b.queues) == (later, "draining", 3, {"default": 2})


# -- retention ----------------------------------------------------------------------------
async def test_prune_runs(store: Store) -> None:
    now = await store.now()
    old, recent = now - timedelta(days=10), now - timedelta(hours=1)
    kept_running, _ = await seed(store, 1)
    doomed = []
    for _ in range(5):
        run, tasks = await seed(store, 2)
        claimed = await store.claim([tasks[0].id], "w1", 30)
        await store.append_logs([NewLog(run.id, tasks[0].id, claimed[0][1].id, "stdout", "x")])
        await store.add_event(run.id, "run.created", "test")
        await store.update_run(run.id, 1, {"status": "completed", "finished_at": old})
        doomed.append((run, tasks))
    fresh, _ = await seed(store, 1)
    await store.update_run(fresh.id, 1, {"status": "failed", "finished_at": recent})

    assert await store.prune_runs(now - timedelta(days=1), batch=2) == 5
    for run, tasks in doomed:
        with pytest.raises(NotFound):
            await store.get_run(run.id)
        with pytest.raises(NotFound):
            await store.get_task(tasks[0].id)
        assert await store.get_tasks(run.id) == []
        assert await store.get_attempts(run.id) == []
        assert await store.read_logs(tasks[0].id) == []
        assert await store.list_events(run.id) == []
    assert {r.id for r in (await store.list_runs())[0]} == {kept_running.id, fresh.id}
    assert await store.count_runs() == 2
    assert await store.count_runs(status="completed") == 0
    assert await store.prune_runs(now - timedelta(days=1)) == 0
    # nothing of the pruned runs is left to dispatch
    due = await store.due_tasks(now, now, 100)
    assert {t.run_id for t in due} == {kept_running.id, fresh.id}
