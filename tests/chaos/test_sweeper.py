"""Chaos scenario 8 (research 3): the lease sweeper paused between its read and its write
(a fault-injection point, treadle.faults) while the expired attempt's worker reports late."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import prepare, single
from tests.integration.cluster import Cluster, wait_for, with_options

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(180)]

POINT = "sweep.after_read"


def test_sweeper_and_late_completion_race(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The sweeper has read an expired attempt and stops; the frozen worker wakes, its body
    ends and it reports (heartbeat and result) inside the sweeper's read-write gap. Exactly
    one side wins: the attempt is lost, the late result is rejected, the task runs again."""
    chaos = prepare(make_cluster, tmp_path, request, "8 sweeper vs late completion", "redis")
    # The paused sweeper sits in its transaction: keep the server from ending it meanwhile.
    c = chaos.cluster
    c.db_override = with_options(c.db_override, "idle_in_transaction_timeout=150")
    (worker,) = chaos.start(workers=1, concurrency=1)
    chaos.post(single("raced", chaos.ledger, handler="chaos_block", seconds=1.0), 1)
    (attempt,) = wait_for(lambda: chaos.held_by(worker), 60, "the attempt to start")
    worker.signal(signal.SIGSTOP)
    chaos.arm(POINT)
    try:
        wait_for(lambda: chaos.reached(POINT), 60, "the sweeper to read the expired lease")
    finally:
        worker.signal(signal.SIGCONT)
    try:
        # The worker's heartbeat / result now waits on the row the paused sweeper locked.
        wait_for(lambda: chaos.lock_waiters() > 0, 60, "the late worker to hit the gap")
    finally:
        chaos.release(POINT)
    chaos.fault("sweeper paused in its read-write gap")
    fig = chaos.check(tasks_per_run=1)
    rows = chaos.cluster.sql("SELECT id, status FROM treadle_attempts ORDER BY number")
    assert [r["status"] for r in rows] == ["lost", "completed"], rows
    assert rows[0]["id"] == attempt
    assert fig.duplicated == 1 and fig.extra_runs == 1
