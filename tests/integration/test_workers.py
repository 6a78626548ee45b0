"""Issue 4 items 4, 7 and 8 with real worker processes.

- Queue routing and per-queue concurrency, checked from the attempts table's timestamps.
- The workers registry: id, host, queues with concurrency, in-flight, last seen; dead -> lost.
- Graceful stop: in-flight attempts finish within --grace; past it they are handed back.
"""

from __future__ import annotations

import itertools
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(180)]

HEARTBEAT = {"TREADLE_LEASE_SECONDS": "4", "TREADLE_HEARTBEAT_SECONDS": "0.5"}


def worker_of(pid: int) -> str:
    return f"{socket.gethostname()}-{pid}-%"


def test_queue_routing_and_a_slow_1_queue_never_runs_two_at_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster("rabbitmq", env=HEARTBEAT)
    cluster.api(wait=False)
    cluster.coordinator(wait=False)
    both = cluster.worker("--queue", "slow:1", "--queue", "default:3", wait=False)
    plain = cluster.worker("--queue", "default:3", wait=False)
    cluster.wait_ready(*cluster.procs)
    slow = [
        {"name": f"slow{i}", "kind": "sleep", "seconds": 0.3, "queue": "slow", "depends_on": []}
        for i in range(8)
    ]
    fast = [
        {"name": f"fast{i}", "kind": "sleep", "seconds": 0.3, "depends_on": []} for i in range(12)
    ]
    cluster.post_runs({"name": "queues", "tasks": slow + fast}, 2)
    assert cluster.wait_runs_finished(2, timeout=120) == {"completed": 2}
    rows = cluster.sql(
        "SELECT t.queue, a.worker_id, a.started_at, a.finished_at FROM treadle_attempts a "
        "JOIN treadle_tasks t ON t.id = a.task_id WHERE a.status = 'completed' "
        "ORDER BY a.started_at"
    )
    on_slow = [r for r in rows if r["queue"] == "slow"]
    assert len(on_slow) == 16
    # Routing: only the worker that serves "slow" ran its tasks.
    assert {r["worker_id"].rsplit("-", 2)[1] for r in on_slow} == {str(both.pid)}
    # Concurrency 1: in the store's own timestamps, each slow attempt started after the
    # previous one had finished.
    for before, after in itertools.pairwise(on_slow):
        assert after["started_at"] >= before["finished_at"], (before, after)
    # The default queue was shared by both workers, and did run tasks side by side.
    on_default = [r for r in rows if r["queue"] == "default"]
    assert {r["worker_id"].rsplit("-", 2)[1] for r in on_default} == {str(both.pid), str(plain.pid)}
    overlaps = sum(
        1 for a, b in itertools.pairwise(on_default) if b["started_at"] < a["finished_at"]
    )
    assert overlaps > 0


def _workers(cluster: Cluster) -> dict[str, dict[str, Any]]:
    with cluster.client() as client:
        reply = client.get("/api/v1/workers")
    assert reply.status_code == 200, reply.text
    return {w["id"].rsplit("-", 2)[1]: w for w in reply.json()["items"]}


def test_workers_registry_shows_queues_in_flight_and_lost_workers(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster("redis", env=HEARTBEAT)
    cluster.api(wait=False)
    cluster.coordinator(wait=False)
    busy = cluster.worker("--queue", "io:3", "--queue", "default:2", wait=False)
    doomed = cluster.worker("--queue", "cpu:1", wait=False)
    cluster.wait_ready(*cluster.procs)
    task = {"name": "hold", "kind": "sleep", "seconds": 5, "queue": "io"}
    cluster.post_runs({"name": "hold", "tasks": [task]}, 2)

    def busy_shows_two() -> dict[str, dict[str, Any]] | None:
        workers = _workers(cluster)
        return workers if workers.get(str(busy.pid), {}).get("in_flight") == 2 else None

    workers = wait_for(busy_shows_two, 30, "the busy worker to report 2 in flight")
    entry = workers[str(busy.pid)]
    assert entry["host"] == socket.gethostname()
    assert entry["queues"] == {"io": 3, "default": 2}
    assert entry["status"] == "alive"
    assert entry["last_seen"] >= entry["started_at"]
    assert workers[str(doomed.pid)]["queues"] == {"cpu": 1}
    assert workers[str(doomed.pid)]["in_flight"] == 0

    doomed.kill9()  # no goodbye: only the missing heartbeats tell
    wait_for(
        lambda: _workers(cluster)[str(doomed.pid)]["status"] == "lost",
        15,
        "the killed worker to be marked lost",
    )
    first_seen = _workers(cluster)[str(busy.pid)]["last_seen"]
    time.sleep(1.2)
    assert _workers(cluster)[str(busy.pid)]["last_seen"] > first_seen  # heartbeats go on
    assert cluster.wait_runs_finished(2, timeout=60) == {"completed": 2}
    assert busy.stop() == 0
    assert _workers(cluster)[str(busy.pid)]["status"] == "stopped"


def test_graceful_stop_finishes_in_flight_work_then_hands_back_the_rest(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    cluster = make_cluster("redis", env=HEARTBEAT)
    cluster.api(wait=False)
    cluster.coordinator(wait=False)
    patient = cluster.worker("--queue", "default:2", "--grace", "15", wait=False)
    cluster.wait_ready(*cluster.procs)

    def task(name: str, seconds: float) -> dict[str, Any]:
        args = {"path": str(marks), "seconds": seconds}
        return {
            "name": name,
            "tasks": [{"name": "t", "kind": "python", "handler": "it_mark", "args": args}],
        }

    def running_on(pid: int) -> int:
        return int(
            cluster.sql(
                "SELECT count(*) AS n FROM treadle_attempts WHERE status = 'running' "
                "AND worker_id LIKE $1",
                worker_of(pid),
            )[0]["n"]
        )

    # 1. Within the grace period: SIGTERM, the 3 s attempt finishes, then the worker exits.
    cluster.post_runs(task("short", 3), 1)
    wait_for(lambda: running_on(patient.pid), 30, "the attempt to start")
    stopped_at = time.monotonic()
    patient.signal(signal.SIGTERM)
    patient.proc.wait(30)
    assert patient.proc.returncode == 0, patient.text()
    assert time.monotonic() - stopped_at < 15
    rows = cluster.sql("SELECT status, worker_id FROM treadle_attempts")
    assert [r["status"] for r in rows] == ["completed"]
    assert cluster.wait_runs_finished(1, timeout=30) == {"completed": 1}

    # 2. Past the grace period: SIGINT, the 30 s attempt is handed back after 1 s and another
    #    worker runs it again (and it completes there).
    hasty = cluster.worker("--queue", "default:2", "--grace", "1")
    cluster.post_runs(task("long", 8), 1)
    wait_for(lambda: running_on(hasty.pid), 30, "the long attempt to start")
    stopped_at = time.monotonic()
    hasty.signal(signal.SIGINT)
    hasty.proc.wait(30)
    assert hasty.proc.returncode == 0, hasty.text()
    assert time.monotonic() - stopped_at < 8, "it waited for the attempt instead of 1 s"
    handed = cluster.sql(
        "SELECT a.status, a.error, t.status AS task_status FROM treadle_attempts a "
        "JOIN treadle_tasks t ON t.id = a.task_id WHERE a.worker_id LIKE $1",
        worker_of(hasty.pid),
    )
    assert [(r["status"], r["task_status"]) for r in handed] == [("cancelled", "queued")], handed
    assert "worker stopped" in handed[0]["error"]
    heir = cluster.worker("--queue", "default:2")
    assert cluster.wait_runs_finished(2, timeout=60) == {"completed": 2}
    final = cluster.sql(
        "SELECT worker_id FROM treadle_attempts WHERE status = 'completed' ORDER BY started_at"
    )
    assert final[-1]["worker_id"].rsplit("-", 2)[1] == str(heir.pid)
