"""Chaos scenarios 5 and 9: the store's connections cut, and PostgreSQL stalled for a worker
for longer than a lease (PostgreSQL itself is shared: it is never restarted)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import SETTLE, chain, prepare, single, spread
from tests.chaos.proxy import ChaosProxy
from tests.integration.cluster import FULL, Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600 if FULL else 180)]

RUNS = 200 if FULL else 12


def test_store_sessions_terminated_under_load(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """5 (and research 8, ambiguous commits): ``pg_terminate_backend`` of every store session
    of the cluster, three times mid-load; transactions in flight die at any point."""
    chaos = prepare(make_cluster, tmp_path, request, "5 pg_terminate_backend x3", "redis")
    chaos.start(workers=2, concurrency=4)
    chaos.post(chain("cut", chaos.ledger, seconds=0.05), RUNS)
    cut = 0
    for threshold in spread(RUNS * 4, 3):
        wait_for(lambda t=threshold: chaos.count_tasks("completed") >= t, 180, f"{threshold}")
        cut += chaos.terminate_store_sessions()
    chaos.fault(f"{cut} sessions terminated")
    fig = chaos.check(tasks_per_run=4)
    assert cut > 0
    assert fig.completed == RUNS * 4
    for proc in chaos.cluster.procs:
        assert proc.alive(), f"{proc.role} died:\n{proc.text()[-2000:]}"


def test_store_stalled_longer_than_a_lease(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """9 (research 10). One worker reaches PostgreSQL through a proxy that stops passing bytes
    (connections stay open) for longer than a lease, then heals. Its attempts are swept and run
    by the other worker; after the stall its late results are rejected."""
    chaos = prepare(make_cluster, tmp_path, request, "9 store stalled > lease", "redis")
    c = chaos.cluster
    with ChaosProxy("127.0.0.1", 5432) as proxy:
        c.api(wait=False)
        c.coordinator(wait=False)
        stalled = chaos.worker(
            "--queue",
            "default:4",
            env={"TREADLE_DB": c.db_override.replace(":5432/", f":{proxy.port}/")},
            wait=False,
        )
        c.wait_ready(*c.procs, timeout=180)
        chaos.post(single("stalled", chaos.ledger, seconds=1.0), 8)
        held = wait_for(lambda: chaos.held_by(stalled), 60, "the proxied worker to hold tasks")
        proxy.stall()
        try:
            wait_for(lambda: set(chaos.statuses(held)) == {"lost"}, 60, "its leases swept")
            chaos.worker("--queue", "default:4")
            chaos.wait_finished(8, SETTLE)
        finally:
            proxy.release()
        chaos.fault(f"store stalled for a worker holding {len(held)}")
        fig = chaos.check(tasks_per_run=1)
        wait_for(lambda: "stale result(s) rejected" in stalled.text(), 60, "the late reports")
    assert stalled.alive(), stalled.text()[-2000:]
    assert fig.duplicated >= 1
    assert set(chaos.statuses(held)) == {"lost"}
