"""Chaos scenarios 3 and 7: coordinators killed or frozen while another one runs, and a
standalone process (api + coordinator + worker + in-process queue) killed and restarted."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import chain, extended, prepare, spread
from tests.conftest import free_port
from tests.integration.cluster import FULL, Cluster, Proc, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600 if FULL else 180)]

RUNS = 200 if FULL else 12


def test_coordinator_killed_and_frozen_while_another_runs(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """3 + research 7: two coordinators; kill -9 one (then restart it), later freeze the other
    past a lease (SIGSTOP / SIGCONT): its stale view must not move anything twice."""
    chaos = prepare(make_cluster, tmp_path, request, "3 coordinator kill -9 / SIGSTOP", "redis")
    c = chaos.cluster
    chaos.start(workers=2, concurrency=4, coordinators=2)
    first, second = (p for p in c.procs if p.role == "coordinator")
    chaos.post(chain("coordinated", chaos.ledger, seconds=0.1), RUNS)
    kill_at, freeze_at = spread(RUNS * 4, 2)
    wait_for(lambda: chaos.count_tasks("completed") >= kill_at, 120, "a third of the tasks")
    first.kill9()
    c.coordinator(wait=False)
    wait_for(lambda: chaos.count_tasks("completed") >= freeze_at, 120, "two thirds of the tasks")
    second.signal(signal.SIGSTOP)
    time.sleep(4)  # the fault's length (longer than a lease), not a wait for a condition
    second.signal(signal.SIGCONT)
    chaos.fault("kill -9 coordinator + restart, SIGSTOP the other 4s")
    fig = chaos.check(tasks_per_run=4)
    assert fig.completed == RUNS * 4
    assert second.alive(), second.text()[-2000:]


def _standalone(chaos_cluster: Cluster, port: int) -> Proc:
    """``treadle standalone`` on the cluster's PostgreSQL schema, with its in-process queue."""
    proc = chaos_cluster._spawn(
        "standalone",
        ["--port", str(port), "--import", "tests.chaos.handlers", "--queue", "default:4"],
        {"TREADLE_BROKER": "memory://"},
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"standalone exited: {proc.text()}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 60, "standalone to be ready")
    chaos_cluster.api_url = url
    return proc


@extended
def test_standalone_killed_and_restarted(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """3b. kill -9 a standalone process mid-load (its in-process queue dies with it), start it
    again: the store alone is enough to finish every run."""
    chaos = prepare(make_cluster, tmp_path, request, "3b standalone kill -9 + restart", "redis")
    port = free_port()
    proc = _standalone(chaos.cluster, port)
    runs = RUNS // 2
    chaos.post(chain("standalone", chaos.ledger, seconds=0.1), runs)
    wait_for(lambda: chaos.count_tasks("completed") >= runs, 120, "a quarter of the tasks")
    held = len(chaos.held_by(proc))
    proc.kill9()
    chaos.fault(f"kill -9 standalone ({held} attempts held), restart")
    _standalone(chaos.cluster, port)
    fig = chaos.check(tasks_per_run=4)
    assert fig.completed == runs * 4
