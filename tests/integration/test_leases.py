"""Issue 4 item 5 with real processes: fencing of a stale worker, poison tasks, long tasks.

Leases are short here (3 s, heartbeat every 0.5 s) so an expired lease is swept within seconds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(180)]

LEASES = {"TREADLE_LEASE_SECONDS": "3", "TREADLE_HEARTBEAT_SECONDS": "0.5"}


def one_task(name: str, **task: object) -> dict[str, object]:
    return {"name": name, "tasks": [{"name": "only", "kind": "python", **task}]}


def attempts(cluster: Cluster) -> list[dict[str, object]]:
    return cluster.sql(
        "SELECT id, number, status, worker_id, error FROM treadle_attempts ORDER BY number"
    )


def test_a_stale_workers_late_result_is_rejected(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    cluster = make_cluster("redis", env=LEASES)
    cluster.api(wait=False)
    cluster.coordinator(wait=False)
    frozen = cluster.worker("--queue", "default:2", wait=False)
    cluster.wait_ready(*cluster.procs)
    definition = one_task(
        "fenced", handler="it_mark_blocking", args={"path": str(marks), "seconds": 2.0}
    )
    (run_id,) = cluster.post_runs(definition, 1)
    wait_for(lambda: attempts(cluster), 60, "the first attempt to start")
    frozen.signal(signal.SIGSTOP)  # no heartbeats: its lease runs out while the body "runs"
    try:
        wait_for(lambda: attempts(cluster)[0]["status"] == "lost", 30, "the lease to be swept")
        cluster.worker("--queue", "default:2")
        wait_for(lambda: cluster.run_counts().get("completed") == 1, 60, "the second attempt")
    finally:
        frozen.signal(signal.SIGCONT)
    # The frozen worker wakes up, finishes its copy of the body and reports: too late.
    wait_for(lambda: "stale result(s) rejected" in frozen.text(), 30, "the late report")
    wait_for(lambda: len(marks.read_text().splitlines()) == 2, 30, "the late body to end")
    rows = attempts(cluster)
    assert [r["status"] for r in rows] == ["lost", "completed"], rows
    assert "lease expired" in str(rows[0]["error"])
    assert rows[0]["worker_id"] != rows[1]["worker_id"]
    task = cluster.sql("SELECT status, attempt_id, output FROM treadle_tasks")[0]
    assert task["status"] == "completed"
    assert task["attempt_id"] == rows[1]["id"]
    assert str(rows[1]["id"]) in str(task["output"])  # the winner's output, not the late one
    # At-least-once: both bodies ran (the late one is visible in the marks), one result counts.
    assert len(marks.read_text().splitlines()) == 2
    with cluster.client() as client:
        run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "completed"


def test_a_poison_task_fails_at_the_delivery_limit(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster("redis", env={**LEASES, "TREADLE_DELIVERY_LIMIT": "2"})
    cluster.api(wait=False)
    cluster.coordinator(wait=False)
    workers = [cluster.worker("--queue", "default:1", wait=False) for _ in range(2)]
    cluster.wait_ready(*cluster.procs)
    (run_id,) = cluster.post_runs(one_task("poison", handler="it_die"), 1)
    counts = cluster.wait_runs_finished(1, timeout=90)
    assert counts == {"failed": 1}
    assert all(not w.alive() for w in workers), "each delivery killed one worker"
    assert [r["status"] for r in attempts(cluster)] == ["lost", "lost"]
    task = cluster.sql("SELECT status, error FROM treadle_tasks")[0]
    assert task["status"] == "failed"
    assert "poison task" in task["error"] and "delivery limit 2" in task["error"], task
    with cluster.client() as client:
        run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "failed"


def test_a_task_longer_than_the_broker_ack_timeout_completes_once(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """PostgreSQL broker with a 1 s visibility timeout, a 3 s lease and a 6 s task."""
    marks = tmp_path / "marks.txt"
    cluster = make_cluster("postgres", broker_extra="visibility_timeout=1", env=LEASES)
    cluster.start(workers=2, worker_args=["--queue", "default:2"])
    started = time.monotonic()
    cluster.post_runs(
        one_task("long", handler="it_mark", args={"path": str(marks), "seconds": 6}), 1
    )
    assert cluster.wait_runs_finished(1, timeout=60) == {"completed": 1}
    assert time.monotonic() - started >= 6
    rows = attempts(cluster)
    assert [r["status"] for r in rows] == ["completed"], rows
    assert len(marks.read_text().splitlines()) == 1
