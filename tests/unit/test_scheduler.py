from __future__ import annotations

from datetime import UTC, datetime

from treadle.engine.scheduler import decide, trigger_verdict
from treadle.store.records import RunRecord, TaskRecord

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _run(status: str = "running") -> RunRecord:
    return RunRecord(
        id="r",
        definition_name="d",
        definition_version=1,
        definition={"vars": {"x": "{{ inputs.a }}"}},
        status=status,
        inputs={"a": "A"},
        created_at=NOW,
    )


def _task(
    name: str, status: str = "pending", deps: list[str] | None = None, **spec: object
) -> TaskRecord:
    return TaskRecord(
        id=name,
        run_id="r",
        name=name,
        seq=0,
        status=status,
        spec={"name": name, "kind": "log", "message": "{{ vars.x }}", **spec},
        depends_on=deps or [],
        queue="default",
        priority=0,
        created_at=NOW,
    )


def test_pending_run_starts_and_roots_are_queued_rendered() -> None:
    decision = decide(_run("pending"), [_task("a"), _task("b", deps=["a"])], NOW)
    assert decision.run_values is not None and decision.run_values["status"] == "running"
    assert [t.name for t in decision.queued] == ["a"]
    change = decision.task_changes[0]
    assert change.values["status"] == "queued"
    assert change.values["rendered"]["message"] == "A"


def test_dependant_waits_until_dependency_completes() -> None:
    waiting = decide(_run(), [_task("a", "running"), _task("b", deps=["a"])], NOW)
    assert waiting.queued == []
    ready = decide(_run(), [_task("a", "completed"), _task("b", deps=["a"])], NOW)
    assert [t.name for t in ready.queued] == ["b"]


def test_failed_dependency_cancels_dependants_and_fails_the_run() -> None:
    first = decide(_run(), [_task("a", "failed"), _task("b", deps=["a"])], NOW)
    assert first.task_changes[0].values["status"] == "cancelled"
    assert first.run_values is not None
    assert first.run_values["status"] == "failed"
    assert "'a'" in first.run_values["error"]


def test_all_done_runs_after_a_failure() -> None:
    decision = decide(
        _run(), [_task("a", "failed"), _task("b", deps=["a"], trigger_rule="all_done")], NOW
    )
    assert [t.name for t in decision.queued] == ["b"]


def test_template_error_fails_only_that_task_with_the_expression() -> None:
    decision = decide(_run(), [_task("a", message="{{ tasks.ghost.output }}")], NOW)
    change = decision.task_changes[0]
    assert change.values["status"] == "failed"
    assert "ghost" in change.values["error"]


def test_false_condition_skips() -> None:
    decision = decide(_run(), [_task("a", **{"if": "{{ inputs.a == 'B' }}"})], NOW)
    assert decision.task_changes[0].values["status"] == "skipped"
    assert decision.run_values is not None and decision.run_values["status"] == "completed"


def test_trigger_rules() -> None:
    ok, bad = _task("x", "completed"), _task("y", "failed")
    assert trigger_verdict("one_success", [ok, bad]) == "run"
    assert trigger_verdict("one_failed", [ok, bad]) == "run"
    assert trigger_verdict("none_failed", [ok, bad]) == "upstream_failed"  # -> cancelled
    assert trigger_verdict("all_success", [ok, _task("z", "running")]) == "wait"


def test_allowed_failure_does_not_fail_the_run() -> None:
    decision = decide(
        _run(), [_task("a", "failed", allow_failure=True), _task("b", "completed", deps=["a"])], NOW
    )
    assert decision.run_values is not None
    assert decision.run_values["status"] == "completed"
