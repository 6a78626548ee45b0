"""Issue 4 item 6: three coordinators at once over 2,000 ready tasks (TREADLE_FULL_TESTS=1;
600 by default); each task completes exactly once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.cluster import FULL, Cluster

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(300)]

#: 2,000 independent tasks with TREADLE_FULL_TESTS=1 (the issue's figure), 600 by default.
RUNS, WIDTH = (100, 20) if FULL else (30, 20)


def test_three_coordinators_complete_every_task_exactly_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster("redis")
    cluster.api()
    definition = {
        "name": "wide",
        "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(WIDTH)],
    }
    cluster.post_runs(definition, RUNS)  # no coordinator yet: all 2,000 tasks wait, ready
    assert cluster.sql("SELECT count(*) AS n FROM treadle_tasks")[0]["n"] == RUNS * WIDTH
    coordinators = [cluster.coordinator(wait=False) for _ in range(3)]
    workers = [cluster.worker("--queue", "default:8", wait=False) for _ in range(2)]
    cluster.wait_ready(*coordinators, *workers)
    assert cluster.wait_runs_finished(RUNS, timeout=240) == {"completed": RUNS}
    per_task = cluster.sql(
        "SELECT t.id, t.status, count(a.id) FILTER (WHERE a.status = 'completed') AS done "
        "FROM treadle_tasks t LEFT JOIN treadle_attempts a ON a.task_id = t.id GROUP BY t.id"
    )
    assert len(per_task) == RUNS * WIDTH
    assert {(r["status"], r["done"]) for r in per_task} == {("completed", 1)}
    # No coordinator crashed on a lost compare-and-set race.
    assert all(c.alive() for c in coordinators)
