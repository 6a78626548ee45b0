"""The cache of runs' immutable columns is bounded by runs and by definition tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from treadle.store.immutable_cache import ImmutableColumns
from treadle.store.records import RunRecord


def run(run_id: str, tasks: int) -> RunRecord:
    definition = {"name": "d", "tasks": [{"name": f"t{i}", "kind": "noop"} for i in range(tasks)]}
    return RunRecord(run_id, "d", 1, definition, "running", {"x": run_id}, datetime.now(UTC))


def test_oldest_runs_go_first_beyond_the_task_bound() -> None:
    cache = ImmutableColumns(max_runs=100, max_tasks=2_500)
    for i in range(3):
        cache.remember(run(f"r{i}", 1_000))
    assert "r0" not in cache  # 3 x 1,001 > 2,500: the oldest went
    assert cache.get("r1") is not None and cache["r2"][1] == {"x": "r2"}
    assert (len(cache), cache.tasks) == (2, 2_002)


def test_oldest_runs_go_first_beyond_the_run_bound() -> None:
    cache = ImmutableColumns(max_runs=2, max_tasks=10_000)
    for i in range(3):
        cache.remember(run(f"r{i}", 1))
    assert [r in cache for r in ("r0", "r1", "r2")] == [False, True, True]
    assert cache.get("r0") is None


def test_a_run_bigger_than_the_bound_is_still_kept_alone() -> None:
    cache = ImmutableColumns(max_runs=100, max_tasks=10)
    cache.remember(run("small", 2))
    cache.remember(run("big", 50))
    assert ("small" in cache, "big" in cache, cache.tasks) == (False, True, 51)


def test_remembering_a_run_again_counts_it_once() -> None:
    cache = ImmutableColumns(max_runs=100, max_tasks=10_000)
    cache.remember(run("r", 10))
    cache.remember(run("r", 10))
    assert (len(cache), cache.tasks) == (1, 11)
