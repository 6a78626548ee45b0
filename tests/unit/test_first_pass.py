"""A new run's first pass made as it is created (engine/first_pass.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from treadle.engine.first_pass import first_pass
from treadle.store.records import LayerRecord, RunRecord, TaskRecord

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def run_of(status: str = "pending", **definition: Any) -> RunRecord:
    return RunRecord(
        id="r",
        definition_name="d",
        definition_version=1,
        definition={"tasks": [], **definition},
        status=status,
        inputs={"who": "world"},
        created_at=NOW,
    )


def task(name: str, seq: int, deps: list[str] | None = None, **spec: Any) -> TaskRecord:
    return TaskRecord(
        id=name,
        run_id="r",
        name=name,
        seq=seq,
        status="pending",
        spec={"name": name, "kind": "log", "message": "hi {{ inputs.who }}", **spec},
        depends_on=deps or [],
        queue=spec.get("queue", "default"),
        priority=0,
        created_at=NOW,
    )


def test_a_run_that_only_queues_tasks_is_started_with_them_queued() -> None:
    tasks = [task("a", 0), task("b", 1, ["a"]), task("c", 2)]
    made = first_pass(run_of(timeout=60), tasks, [], NOW, {})
    assert made is not None
    assert (made.run.status, made.run.started_at, made.run.version) == ("running", NOW, 2)
    assert made.run.deadline_at is not None and (made.run.deadline_at - NOW).total_seconds() == 60
    by_name = {t.name: t for t in made.tasks}
    assert [t.name for t in made.queued] == ["a", "c"]
    for name in ("a", "c"):
        queued = by_name[name]
        assert (queued.status, queued.version, queued.queued_at) == ("queued", 2, NOW)
        assert queued.rendered is not None and queued.rendered["message"] == "hi world"
    assert (by_name["b"].status, by_name["b"].version) == ("pending", 1)
    assert made.events == [("run.started", "coordinator", {})]


@pytest.mark.parametrize(
    ("run", "tasks", "layers", "rates"),
    [
        pytest.param(run_of("paused"), [task("a", 0)], [], {}, id="created-paused"),
        pytest.param(run_of(concurrency={"limit": 1}), [task("a", 0)], [], {}, id="concurrency"),
        pytest.param(
            run_of(concurrency={"limit": 1, "key": "{{ nope.x }}"}),
            [task("a", 0)],
            [],
            {},
            id="bad-concurrency-key",
        ),
        pytest.param(
            run_of(),
            [task("a", 0)],
            [LayerRecord("l", "r", "one", 0, "pending", NOW)],
            {},
            id="layers",
        ),
        pytest.param(run_of(), [task("a", 0, each=[1, 2])], [], {}, id="fan-out"),
        pytest.param(
            run_of(), [task("a", 0, kind="subworkflow", definition="x")], [], {}, id="subworkflow"
        ),
        pytest.param(run_of(), [task("a", 0, kind="wait", seconds=5)], [], {}, id="wait"),
        pytest.param(run_of(), [task("a", 0)], [], {"default": 5.0}, id="rate-limited-queue"),
        pytest.param(run_of(), [task("a", 0, message="{{ nope.x }}")], [], {}, id="template-error"),
        pytest.param(run_of(), [task("a", 0, **{"if": "false"})], [], {}, id="skipped"),
    ],
)
def test_anything_more_is_left_to_a_coordinator(
    run: RunRecord, tasks: list[TaskRecord], layers: list[LayerRecord], rates: dict[str, float]
) -> None:
    assert first_pass(run, tasks, layers, NOW, rates) is None


def test_other_queues_rate_limits_do_not_hold_it_back() -> None:
    made = first_pass(run_of(), [task("a", 0, queue="fast")], [], NOW, {"slow": 1.0})
    assert made is not None and [t.queue for t in made.queued] == ["fast"]
