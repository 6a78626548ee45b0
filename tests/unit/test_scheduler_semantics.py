"""The pure scheduler: trigger rules, conditions, allow_failure, fan-out groups, layers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from treadle.engine.fanout import finish_group
from treadle.engine.scheduler import (
    RUN,
    SKIP,
    UPSTREAM_FAILED,
    WAIT,
    decide,
    trigger_verdict,
)
from treadle.store.records import LayerRecord, RunRecord, TaskRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def run(status: str = "running", **kw: Any) -> RunRecord:
    values: dict[str, Any] = {
        "id": "r1",
        "definition_name": "d",
        "definition_version": 1,
        "definition": {"name": "d", "tasks": []},
        "status": status,
        "inputs": {},
        "created_at": NOW,
        "started_at": NOW if status != "pending" else None,
    }
    values.update(kw)
    return RunRecord(**values)


def task(
    name: str, status: str = "pending", deps: list[str] | None = None, **spec: Any
) -> TaskRecord:
    extra = {k: spec.pop(k) for k in ("output", "layer", "parent_id", "seq", "error") if k in spec}
    return TaskRecord(
        id=f"id-{name}",
        run_id="r1",
        name=name,
        seq=extra.pop("seq", 0),
        status=status,
        spec={"name": name, "kind": "noop", **spec},
        depends_on=deps or [],
        queue="default",
        priority=0,
        created_at=NOW,
        **extra,
    )


def changes(decision: Any) -> dict[str, str]:
    """task name (from id) -> new status."""
    all_changes = [*decision.task_changes, *(c for c, _ in decision.expansions)]
    return {
        c.task_id.removeprefix("id-"): c.values["status"]
        for c in all_changes
        if "status" in c.values
    }


# -- trigger rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "deps", "verdict"),
    [
        ("all_success", ["completed", "completed"], RUN),
        ("all_success", ["completed", "running"], WAIT),
        ("all_success", ["completed", "failed"], UPSTREAM_FAILED),
        ("all_success", ["failed", "running"], UPSTREAM_FAILED),
        ("all_success", ["skipped", "completed"], RUN),
        ("all_success", ["cancelled", "completed"], UPSTREAM_FAILED),
        ("all_done", ["failed", "completed"], RUN),
        ("all_done", ["failed", "running"], WAIT),
        ("all_done", ["cancelled", "skipped"], RUN),
        ("one_success", ["running", "completed"], RUN),
        ("one_success", ["running", "failed"], WAIT),
        ("one_success", ["failed", "failed"], UPSTREAM_FAILED),
        ("one_success", ["skipped", "skipped"], SKIP),
        ("one_failed", ["running", "failed"], RUN),
        ("one_failed", ["running", "cancelled"], RUN),
        ("one_failed", ["completed", "running"], WAIT),
        ("one_failed", ["completed", "skipped"], SKIP),
        ("none_failed", ["completed", "skipped"], RUN),
        ("none_failed", ["completed", "failed"], UPSTREAM_FAILED),
        ("none_failed", ["completed", "queued"], WAIT),
    ],
)
def test_trigger_verdicts(rule: str, deps: list[str], verdict: str) -> None:
    records = [task(f"d{i}", s) for i, s in enumerate(deps)]
    assert trigger_verdict(rule, records) == verdict


def test_allow_failure_dependency_counts_as_ok() -> None:
    ok = task("a", "failed", allow_failure=True)
    assert trigger_verdict("all_success", [ok]) == RUN
    assert trigger_verdict("one_failed", [ok]) == RUN  # it still failed


def test_one_failed_handler_is_skipped_and_run_completes() -> None:
    tasks = [
        task("work", "completed"),
        task("on_error", deps=["work"], trigger_rule="one_failed"),
    ]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"on_error": "skipped"}
    assert d.run_values is not None and d.run_values["status"] == "completed"


def test_one_failed_handler_runs_but_run_still_fails() -> None:
    tasks = [
        task("work", "failed", error="boom"),
        task("on_error", deps=["work"], trigger_rule="one_failed"),
    ]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"on_error": "queued"}
    done = [task("work", "failed", error="boom"), task("on_error", "completed", deps=["work"])]
    d = decide(run(), done, NOW)
    assert d.run_values is not None
    assert d.run_values["status"] == "failed"
    assert "work" in d.run_values["error"]


def test_upstream_failure_cancels_dependant_and_fails_run() -> None:
    tasks = [task("a", "failed", error="exit 1"), task("b", deps=["a"])]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"b": "cancelled"}
    assert d.run_values is not None and d.run_values["status"] == "failed"
    assert "'a' failed" in d.run_values["error"]


def test_allow_failure_lets_run_complete_and_branches_continue() -> None:
    tasks = [
        task("flaky", "failed", allow_failure=True, error="x"),
        task("other", "running", deps=[]),
        task("after", deps=["flaky"]),
    ]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"after": "queued"}
    finished = [
        task("flaky", "failed", allow_failure=True),
        task("other", "completed"),
        task("after", "completed", deps=["flaky"]),
    ]
    d = decide(run(), finished, NOW)
    assert d.run_values is not None and d.run_values["status"] == "completed"


def test_if_false_skips_and_dependants_still_run() -> None:
    r = run(inputs={"verbose": False})
    tasks = [task("a", **{"if": "{{ inputs.verbose }}"}), task("b", deps=["a"])]
    d = decide(r, tasks, NOW)
    assert changes(d) == {"a": "skipped"}
    d = decide(r, [task("a", "skipped"), task("b", deps=["a"])], NOW)
    assert changes(d) == {"b": "queued"}


def test_if_bare_expression_and_true() -> None:
    r = run(inputs={"n": 3})
    d = decide(r, [task("a", **{"if": "inputs.n > 2"})], NOW)
    assert changes(d) == {"a": "queued"}


def test_if_template_error_fails_task() -> None:
    d = decide(run(), [task("a", **{"if": "{{ inputs.missing.x }}"})], NOW)
    assert changes(d) == {"a": "failed"}


def test_paused_run_dispatches_nothing() -> None:
    d = decide(run("paused"), [task("a")], NOW)
    assert changes(d) == {}
    assert d.run_values is None


def test_created_paused_run_does_not_start() -> None:
    d = decide(run("paused", started_at=None), [task("a")], NOW)
    assert d.run_values is None and changes(d) == {}


def test_paused_task_blocks_dependants_and_run_end() -> None:
    d = decide(run(), [task("a", "paused"), task("b", deps=["a"])], NOW)
    assert changes(d) == {}
    assert d.run_values is None


# -- run timeout -----------------------------------------------------------------------------
def test_run_start_sets_deadline() -> None:
    r = run("pending", definition={"name": "d", "timeout": 5, "tasks": []})
    d = decide(r, [task("a")], NOW)
    assert d.run_values is not None
    assert d.run_values["deadline_at"] == NOW + timedelta(seconds=5)


def test_run_past_deadline_fails_and_kills_running() -> None:
    r = run(definition={"name": "d", "timeout": 5, "tasks": []}, deadline_at=NOW)
    d = decide(r, [task("a", "running"), task("b", deps=["a"]), task("c", "completed")], NOW)
    assert changes(d) == {"a": "cancelled", "b": "cancelled"}
    assert d.kills == ["id-a"]
    assert d.run_values is not None and d.run_values["status"] == "failed"
    assert "timed out after 5s" in d.run_values["error"]


# -- fan-out -----------------------------------------------------------------------------------
def test_each_expands_children_from_upstream_output() -> None:
    tasks = [
        task("src", "completed", output={"json": {"ids": [7, 8, 9]}}),
        task("per", deps=["src"], each="{{ tasks.src.output.json.ids }}", message="{{ item }}"),
    ]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"per": "running"}
    [(_, kids)] = d.expansions
    assert [c.name for c in kids] == ["per[0]", "per[1]", "per[2]"]
    assert [c.spec["fanout"]["item"] for c in kids] == [7, 8, 9]
    assert all(c.parent_id == "id-per" and "each" not in c.spec for c in kids)


def test_each_not_a_list_fails_with_clear_error() -> None:
    tasks = [task("per", each="{{ 5 }}")]
    d = decide(run(), tasks, NOW)
    assert changes(d) == {"per": "failed"}
    assert "must give a list" in d.task_changes[0].values["error"]


def test_each_empty_list_completes_at_once() -> None:
    d = decide(run(), [task("per", each=[])], NOW)
    assert changes(d) == {"per": "running"} and d.expansions[0][1] == []
    parent = replace(task("per", "running", each=[]), rendered={"fanout_items": 0})
    d2 = decide(run(), [parent], NOW)
    assert d2.groups_done == [parent]
    assert finish_group(parent, [], NOW).values == {
        "output": [],
        "finished_at": NOW,
        "settled": False,
        "status": "completed",
        "error": None,
    }


def _group(statuses: list[str], **spec: Any) -> list[TaskRecord]:
    parent = task("p", "running", each=[0] * len(statuses), **spec)
    parent = replace(parent, rendered={"fanout_items": len(statuses)})
    kids = [
        task(
            f"p[{i}]",
            s,
            parent_id="id-p",
            seq=10 + i,
            fanout={"index": i, "item": i},
            message="{{ item * 10 }}",
            output={"n": i} if s == "completed" else None,
        )
        for i, s in enumerate(statuses)
    ]
    return [parent, *kids]


def test_max_parallel_limits_dispatch() -> None:
    d = decide(run(), _group(["running", "pending", "pending", "pending"], max_parallel=2), NOW)
    assert changes(d) == {"p[1]": "queued"}
    rendered = next(c for c in d.task_changes if c.task_id == "id-p[1]").values["rendered"]
    assert rendered["message"] == "10" and "fanout" not in rendered


def test_group_output_is_children_outputs_in_order() -> None:
    tasks = _group(["completed", "completed", "completed"])
    d = decide(run(), [*tasks, task("after", deps=["p"])], NOW)
    assert [p.name for p in d.groups_done] == ["p"]
    shuffled = [tasks[3], tasks[1], tasks[2]]  # order of rows does not matter
    change = finish_group(tasks[0], shuffled, NOW)
    assert change.values["status"] == "completed"
    assert change.values["output"] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_group_counts_settled_children_without_loading_them() -> None:
    parent, *kids = _group(["completed", "completed", "running", "pending"], max_parallel=2)
    open_kids = kids[2:]  # the first two finished and were settled: only counted
    d = decide(run(), [parent, *open_kids], NOW, child_counts={"id-p": {"completed": 2}})
    assert changes(d) == {"p[3]": "queued"} and d.groups_done == []
    done = [replace(k, status="completed") for k in open_kids]
    d = decide(run(), [parent, *done], NOW, child_counts={"id-p": {"completed": 2}})
    assert [p.name for p in d.groups_done] == ["p"]


def test_group_window_bounds_queued_children_without_max_parallel() -> None:
    parent, *kids = _group(["pending"] * 10)
    d = decide(run(), [parent, *kids], NOW, window=3)
    assert len(changes(d)) == 3


def test_group_fails_fast_without_allow_failure() -> None:
    d = decide(run(), _group(["failed", "running", "pending"]), NOW)
    assert changes(d) == {"p[2]": "cancelled"}
    tasks = _group(["failed", "completed", "cancelled"])
    d = decide(run(), tasks, NOW)
    assert [p.name for p in d.groups_done] == ["p"]
    change = finish_group(tasks[0], tasks[1:], NOW)
    assert change.values["status"] == "failed"
    assert "2 of 3 items failed; first p[0]" in change.values["error"]


def test_group_with_allow_failure_runs_every_child() -> None:
    d = decide(run(), _group(["failed", "running", "pending"], allow_failure=True), NOW)
    assert changes(d) == {"p[2]": "queued"}


def test_children_hidden_from_template_context_and_run_output() -> None:
    tasks = _group(["completed"])
    parent = task("p", "completed", each=[0], output=[{"n": 0}])
    d = decide(run(), [parent, *tasks[1:]], NOW)
    assert d.run_values is not None
    assert d.run_values["output"] == {"p": [{"n": 0}]}


# -- layers -----------------------------------------------------------------------------------
def layer(name: str, priority: int, status: str = "pending", paused: bool = False) -> LayerRecord:
    return LayerRecord(
        id=f"L-{name}",
        run_id="r1",
        name=name,
        priority=priority,
        status=status,
        created_at=NOW,
        paused=paused,
    )


def layer_changes(d: Any) -> dict[str, str]:
    return {c.layer_id.removeprefix("L-"): c.values.get("status") for c in d.layer_changes}


def test_lowest_layers_start_together_higher_waits() -> None:
    layers = [layer("a", 0), layer("b", 0), layer("c", 5)]
    tasks = [task("ta", layer="a"), task("tb", layer="b"), task("tc", layer="c")]
    d = decide(run(), tasks, NOW, layers)
    assert layer_changes(d) == {"a": "running", "b": "running"}
    assert changes(d) == {"ta": "queued", "tb": "queued"}


def test_higher_layer_starts_after_lower_completed_or_skipped() -> None:
    layers = [layer("a", 0, "completed"), layer("b", 0, "skipped"), layer("c", 5)]
    tasks = [task("ta", "completed", layer="a"), task("tc", layer="c")]
    d = decide(run(), tasks, NOW, layers)
    assert layer_changes(d) == {"c": "running"}
    assert changes(d) == {"tc": "queued"}


def test_empty_layer_completes_at_once() -> None:
    d = decide(run(), [task("t", layer="b")], NOW, [layer("a", 0), layer("b", 1)])
    # "a" starts and completes in the same pass, so "b" may start at once.
    assert layer_changes(d) == {"a": "completed", "b": "running"}
    assert changes(d) == {"t": "queued"}


def test_layer_completes_when_its_tasks_finish() -> None:
    d = decide(run(), [task("t", "completed", layer="a")], NOW, [layer("a", 0, "running")])
    assert layer_changes(d) == {"a": "completed"}
    assert d.run_values is not None and d.run_values["status"] == "completed"


def test_failed_layer_cancels_higher_ones() -> None:
    layers = [layer("a", 0, "running"), layer("b", 1)]
    tasks = [task("ta", "failed", layer="a"), task("tb", layer="b")]
    d = decide(run(), tasks, NOW, layers)
    assert layer_changes(d) == {"a": "failed", "b": "cancelled"}
    assert changes(d) == {"tb": "cancelled"}


def test_paused_layer_starts_nothing_and_blocks_higher() -> None:
    layers = [layer("a", 0, paused=True), layer("b", 1)]
    d = decide(run(), [task("ta", layer="a"), task("tb", layer="b")], NOW, layers)
    assert d.layer_changes == [] and changes(d) == {}


def test_paused_running_layer_dispatches_nothing_new() -> None:
    layers = [layer("a", 0, "running", paused=True)]
    d = decide(run(), [task("t1", "running", layer="a"), task("t2", layer="a")], NOW, layers)
    assert changes(d) == {}
