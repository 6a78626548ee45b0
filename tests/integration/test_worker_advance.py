"""Workers advance the runs they hold alone (worker.py, ``worker_advances_runs``).

A worker that finished every open task of a run decides the run's next step itself and claims
what that queued for its own free slot: a chain then stays on the worker that ran its first
step, with no doorbell in between. With the setting off every report goes through the
coordinator and each step's doorbell goes to whichever worker is waiting, so chains spread.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(180)]

STEPS = 8
RUNS = 3


@pytest.mark.parametrize("advances", [True, False], ids=["worker-advances", "coordinator-only"])
def test_a_chain_stays_on_the_worker_that_advances_it(
    make_cluster: Callable[..., Cluster], advances: bool
) -> None:
    setting = {"TREADLE_WORKER_ADVANCES_RUNS": "true" if advances else "false"}
    cluster = make_cluster("redis", env=setting)
    cluster.start(workers=2, worker_args=("--queue", "default:4"))
    chain = {"name": "steps", "tasks": [{"name": f"s{i}", "kind": "noop"} for i in range(STEPS)]}
    cluster.post_runs(chain, RUNS)
    assert cluster.wait_runs_finished(RUNS, timeout=90) == {"completed": RUNS}
    rows = cluster.sql(
        "SELECT a.run_id, a.worker_id, t.name FROM treadle_attempts a "
        "JOIN treadle_tasks t ON t.id = a.task_id WHERE a.status = 'completed'"
    )
    steps: dict[str, list[str]] = defaultdict(list)
    workers: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        steps[row["run_id"]].append(row["name"])
        workers[row["run_id"]].add(row["worker_id"])
    # Every step ran exactly once, however it was dispatched.
    assert len(steps) == RUNS
    assert all(sorted(names) == sorted(f"s{i}" for i in range(STEPS)) for names in steps.values())
    assert cluster.double_completions() == []
    spans = sorted(len(found) for found in workers.values())
    if advances:
        assert spans == [1] * RUNS, workers
    else:
        # Doorbells go to the worker blocked longest: over 24 steps both take part.
        assert spans[-1] == 2, workers


def test_a_chain_keeps_its_slot_while_other_runs_wait(
    make_cluster: Callable[..., Cluster],
) -> None:
    """One slot per worker and more chains than slots: the slot a step's report frees stays
    with its chain for the next step (held for the pass), instead of going to another run's
    waiting doorbell, so each chain still runs on one worker."""
    cluster = make_cluster("redis", env={"TREADLE_WORKER_ADVANCES_RUNS": "true"})
    cluster.start(workers=2, worker_args=("--queue", "default:1"))
    chain = {"name": "steps", "tasks": [{"name": f"s{i}", "kind": "noop"} for i in range(STEPS)]}
    runs = 6
    cluster.post_runs(chain, runs)
    assert cluster.wait_runs_finished(runs, timeout=120) == {"completed": runs}
    rows = cluster.sql(
        "SELECT a.run_id, a.worker_id FROM treadle_attempts a WHERE a.status = 'completed'"
    )
    workers: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        workers[row["run_id"]].add(row["worker_id"])
    assert len(rows) == runs * STEPS
    assert cluster.double_completions() == []
    assert sorted(len(found) for found in workers.values()) == [1] * runs, workers


def test_a_pause_during_a_step_holds_the_next_one(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """A worker decides a chain's next step on its copy of the run before its report is
    stored (engine/step_ahead.py); a pause that came while the step's task ran must still
    hold the next task back. The second task is the first whose report can go that way (the
    worker holds a copy of the run from the pass after the first)."""
    flag = tmp_path / "release"
    wait_for_flag = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"
    chain = {
        "name": "held",
        "tasks": [
            {"name": "s0", "kind": "noop"},
            {"name": "s1", "kind": "shell", "command": [sys.executable, "-c", wait_for_flag]},
            {"name": "s2", "kind": "noop"},
            {"name": "s3", "kind": "noop"},
        ],
    }
    cluster = make_cluster("redis", env={"TREADLE_WORKER_ADVANCES_RUNS": "true"})
    cluster.start(workers=1, worker_args=("--queue", "default:2"))
    (run_id,) = cluster.post_runs(chain, 1)

    def task_status(name: str) -> str:
        rows = cluster.sql(
            "SELECT status FROM treadle_tasks WHERE run_id = $1 AND name = $2", run_id, name
        )
        return str(rows[0]["status"])

    wait_for(lambda: task_status("s1") == "running", 30, "s1 to run")
    with cluster.client() as client:
        etag = client.get(f"/api/v1/runs/{run_id}").json()["etag"]
        paused = client.post(f"/api/v1/runs/{run_id}/pause", headers={"If-Match": etag})
        assert paused.status_code == 200, paused.text
        flag.write_text("go")
        wait_for(lambda: task_status("s1") == "completed", 30, "s1 to complete")
        time.sleep(1.0)
        assert task_status("s2") == "pending"
        etag = client.get(f"/api/v1/runs/{run_id}").json()["etag"]
        resumed = client.post(f"/api/v1/runs/{run_id}/unpause", headers={"If-Match": etag})
        assert resumed.status_code == 200, resumed.text
    assert cluster.wait_runs_finished(1, timeout=60) == {"completed": 1}
    assert cluster.double_completions() == []
