"""Chaos scenarios 1, 2, 6 and 15b: workers killed, frozen, poisoned and stopped under load."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import SETTLE, chain, extended, prepare, single, spread
from tests.integration.cluster import FULL, Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600 if FULL else 180)]

#: Scenario 1's load: 2,000 tasks with --full (500 runs x 4), 80 by default.
KILL_RUNS, KILLS = (500, 6) if FULL else (20, 2)


def test_worker_killed_repeatedly_under_load(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """1. kill -9 a worker again and again (a fresh one replaces it each time)."""
    chaos = prepare(make_cluster, tmp_path, request, "1 worker kill -9 x N", "rabbitmq")
    workers = chaos.start(workers=3, concurrency=4)
    chaos.post(chain("killed", chaos.ledger, seconds=0.1), KILL_RUNS)
    total = KILL_RUNS * 4
    held = 0
    for i, threshold in enumerate(spread(total, KILLS)):
        wait_for(lambda t=threshold: chaos.count_tasks("completed") >= t, 240, f"{threshold} tasks")
        victim = workers[i % len(workers)]
        held += len(chaos.held_by(victim))
        victim.kill9()
        workers[i % len(workers)] = chaos.worker("--queue", "default:4", wait=False)
    chaos.fault(f"kill -9 worker x{KILLS} ({held} attempts held)")
    fig = chaos.check(tasks_per_run=4)
    assert held > 0, "no kill hit a worker that held an attempt"
    assert fig.completed == total


def test_frozen_worker_is_fenced(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """2. SIGSTOP a worker past its lease, SIGCONT it: its late results are rejected and its
    tasks ran again elsewhere."""
    chaos = prepare(make_cluster, tmp_path, request, "2 SIGSTOP past lease", "redis")
    (frozen,) = chaos.start(workers=1, concurrency=4)
    # Bodies in a thread: a resumed worker cannot cancel them, so each one reports late.
    chaos.post(single("frozen", chaos.ledger, handler="chaos_block", seconds=1.5), 8)

    def running_bodies() -> list[str]:
        # Attempts it holds whose body has started (the ledger has their start line): each
        # of those will finish after SIGCONT and report late.
        started = chaos.ledger.read_text() if chaos.ledger.exists() else ""
        return [a for a in chaos.held_by(frozen) if a in started]

    held = wait_for(running_bodies, 60, "the worker to run task bodies")
    frozen.signal(signal.SIGSTOP)
    chaos.fault(f"SIGSTOP worker holding {len(held)}")
    try:
        wait_for(lambda: set(chaos.statuses(held)) == {"lost"}, 60, "its leases to be swept")
        chaos.worker("--queue", "default:4")
        chaos.wait_finished(8, SETTLE)
    finally:
        frozen.signal(signal.SIGCONT)
    wait_for(lambda: "stale result(s) rejected" in frozen.text(), 60, "the late reports")
    fig = chaos.check(tasks_per_run=1)
    assert fig.late_rejected >= 1
    assert fig.duplicated >= 1, "the frozen worker's tasks ran again elsewhere"
    assert set(chaos.statuses(held)) == {"lost"}


POISON_LIMIT = 3 if FULL else 2


def test_poison_task_fails_at_the_delivery_limit(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """6. A task that kills its worker every time ends failed after the delivery limit, while
    the other runs keep flowing (dead workers are restarted, as a supervisor would)."""
    chaos = prepare(
        make_cluster,
        tmp_path,
        request,
        f"6 poison task (limit {POISON_LIMIT})",
        "redis",
        env={"TREADLE_DELIVERY_LIMIT": str(POISON_LIMIT)},
    )
    # One slot per worker: a dying worker holds only the poison task, so no innocent task
    # is lost along with it (and pushed towards its own delivery limit).
    workers = chaos.start(workers=2, concurrency=1)
    (poison,) = chaos.post(single("poison", chaos.ledger, handler="chaos_die"), 1)
    chaos.post(single("innocent", chaos.ledger, seconds=0.05), 20)
    deaths = 0

    def settled() -> bool:
        nonlocal deaths
        for i, proc in enumerate(workers):
            if not proc.alive():
                deaths += 1
                workers[i] = chaos.worker("--queue", "default:1", wait=False)
        counts = chaos.cluster.run_counts()
        return counts.get("completed", 0) + counts.get("failed", 0) == 21

    wait_for(settled, 150, "the poison run to fail and the others to complete", interval=0.5)
    chaos.fault(f"{deaths} workers killed by the task")
    fig = chaos.check(tasks_per_run=1, may_fail=lambda t: t["run_id"] == poison)
    task = chaos.cluster.sql("SELECT status, error FROM treadle_tasks WHERE run_id = $1", poison)
    assert task[0]["status"] == "failed"
    assert f"delivery limit {POISON_LIMIT}" in str(task[0]["error"]), task
    runs = chaos.cluster.sql("SELECT id, status FROM treadle_runs WHERE status <> 'completed'")
    assert runs == [{"id": poison, "status": "failed"}]
    starts = chaos.cluster.sql(
        "SELECT count(*) AS n FROM chaos_exec e JOIN treadle_tasks t ON t.id = e.task_id "
        "WHERE t.run_id = $1 AND e.what = 'start'",
        poison,
    )
    assert starts[0]["n"] == POISON_LIMIT, "the poison body ran once per delivery, no more"
    assert fig.failed == 1 and deaths >= POISON_LIMIT


@extended
def test_worker_stopped_with_sigterm_mid_load(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """15b. SIGTERM (graceful, short grace) then a second SIGTERM: in-flight attempts finish
    or are handed back; none is left for the sweeper to find much later, none runs twice."""
    chaos = prepare(
        make_cluster,
        tmp_path,
        request,
        "15b SIGTERM x2 mid-load",
        "rabbitmq",
        env={"TREADLE_GRACE_SECONDS": "1"},
    )
    first, _ = chaos.start(workers=2, concurrency=4)
    chaos.post(chain("stopped", chaos.ledger, seconds=0.5), 10)
    wait_for(lambda: len(chaos.held_by(first)) >= 2, 60, "the worker to hold attempts")
    first.signal(signal.SIGTERM)
    first.signal(signal.SIGTERM)
    first.proc.wait(60)
    chaos.fault("SIGTERM x2")
    fig = chaos.check(tasks_per_run=4)
    assert fig.completed == 40
