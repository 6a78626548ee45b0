"""Pure scheduling decisions: given a run and its tasks, what happens next.

No I/O here. The coordinator loads the rows, calls :func:`decide`, and applies the result with
compare-and-set writes; if another coordinator got there first, its writes simply lose.

Trigger rules (Airflow's meaning): a dependency counts as *ok* when it completed, was skipped,
or failed with ``allow_failure``; *bad* when it failed otherwise or was cancelled.

- ``all_success`` (default): run when every dependency is ok; any bad one -> ``cancelled``
  ("upstream failed").
- ``all_done``: run once every dependency is finished, whatever the outcome.
- ``one_success``: run as soon as one dependency completed; if none did -> ``cancelled`` when
  one was bad, else ``skipped``.
- ``one_failed``: run as soon as one dependency failed or was cancelled; if none did ->
  ``skipped``.
- ``none_failed``: like ``all_success`` but never waits on a skipped dependency's reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from treadle.engine import fanout
from treadle.engine.layering import plan_layers
from treadle.errors import TemplateError
from treadle.model.states import TASK_TERMINAL, RunStatus, TaskStatus
from treadle.model.templating import evaluate_condition, render_task_spec, render_value
from treadle.secrets.refs import NONCE_FIELD, DeferredSecrets, stamp
from treadle.store.records import LayerChange, LayerRecord, RunRecord, TaskChange, TaskRecord

_OK = "ok"
_BAD = "bad"
_WAIT = "wait"

RUN = "run"
WAIT = "wait"
SKIP = "skip"  # not triggered: skipped, counts as done
UPSTREAM_FAILED = "upstream_failed"  # cancelled, fails the run
# Without max_parallel a group keeps at most this many children queued or running at once,
# so each pass reads O(window) rows however large the fan-out.
FANOUT_WINDOW = 500


@dataclass(slots=True)
class Decision:
    """Writes the coordinator should attempt for one run."""

    task_changes: list[TaskChange] = field(default_factory=list)
    queued: list[TaskRecord] = field(default_factory=list)  # tasks being queued (for doorbells)
    settled: list[str] = field(default_factory=list)  # finished tasks now seen
    run_values: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Fan-out: the parent's move to `running` and its children, written atomically.
    expansions: list[tuple[TaskChange, list[TaskRecord]]] = field(default_factory=list)
    layer_changes: list[LayerChange] = field(default_factory=list)
    subworkflows: list[tuple[TaskRecord, dict[str, Any]]] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)  # task ids whose running attempt must stop
    # Groups whose children all finished: the coordinator loads the children and folds them.
    groups_done: list[TaskRecord] = field(default_factory=list)


def template_context(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    """What templates see: inputs, vars, tasks.<name>.output, run."""
    definition = run.definition
    inputs = dict(run.inputs)
    base: dict[str, Any] = {
        "secrets": DeferredSecrets(),  # markers only; the worker substitutes the values
        "inputs": inputs,
        "run": {
            "id": run.id,
            "definition": run.definition_name,
            "version": run.definition_version,
            "labels": run.labels,
        },
    }
    raw_vars = definition.get("vars") or {}
    try:
        base["vars"] = render_value(raw_vars, base, "vars")
    except TemplateError:
        base["vars"] = raw_vars
    # Fan-out children are seen through their parent's list output only.
    base["tasks"] = {
        t.name: {"output": t.output, "status": t.status, "error": t.error}
        for t in tasks
        if t.parent_id is None
    }
    return base


# Plain strings: a pass compares every pending task's dependencies, and an enum member on
# either side of each comparison is several times slower than two str objects.
_PENDING = TaskStatus.PENDING.value
_RUNNING = TaskStatus.RUNNING.value
_COMPLETED = TaskStatus.COMPLETED.value
_SKIPPED = TaskStatus.SKIPPED.value
_FAILED = TaskStatus.FAILED.value
_CANCELLED = TaskStatus.CANCELLED.value


def _outcome(task: TaskRecord) -> str:
    """How a finished dependency counts for trigger rules."""
    status = task.status
    if status in (_COMPLETED, _SKIPPED):
        return _OK
    if status == _FAILED:
        return _OK if task.spec.get("allow_failure") else _BAD
    if status == _CANCELLED:
        return _BAD
    return _WAIT


def trigger_verdict(rule: str, deps: Sequence[TaskRecord]) -> str:
    """:data:`RUN`, :data:`WAIT`, :data:`SKIP` or :data:`UPSTREAM_FAILED` for a pending task."""
    done = True  # every dependency finished
    bad = False  # one counts as bad (see the module docstring)
    completed = False  # one completed
    failed = False  # one failed or was cancelled
    for dep in deps:
        outcome = _outcome(dep)
        if outcome == _WAIT:
            done = False
        elif outcome == _BAD:
            bad = True
        status = dep.status
        if status == _COMPLETED:
            completed = True
        elif status in (_FAILED, _CANCELLED):
            failed = True
    if rule == "all_done":
        return RUN if done else WAIT
    if rule == "one_success":
        if completed:
            return RUN
        if not done:
            return WAIT
        return UPSTREAM_FAILED if bad else SKIP
    if rule == "one_failed":
        if failed:
            return RUN
        return SKIP if done else WAIT
    # all_success and none_failed differ only in name here: skipped counts as ok for both.
    if bad:
        return UPSTREAM_FAILED
    return RUN if done else WAIT


def _first_bad(deps: Sequence[TaskRecord]) -> str:
    for dep in deps:
        if _outcome(dep) == _BAD:
            return dep.name
    return "?"


def needs_outputs(run: RunRecord, tasks: Sequence[TaskRecord]) -> bool:
    """Whether a pass will render templates or finish the run (both read task outputs)."""
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        return False
    by_name = {t.name: t for t in tasks if t.parent_id is None}
    unfinished = False
    for task in tasks:
        if task.parent_id is not None:
            if task.status == TaskStatus.PENDING:
                return True  # a fan-out child may be dispatched: it renders
            continue
        if task.status != TaskStatus.PENDING:
            unfinished = unfinished or task.status not in TASK_TERMINAL
            continue
        unfinished = True
        deps = [by_name[d] for d in task.depends_on if d in by_name]
        if trigger_verdict(str(task.spec.get("trigger_rule", "all_success")), deps) == RUN:
            return True
    return not unfinished


def _finish(task: TaskRecord, status: TaskStatus, error: str | None, now: datetime) -> TaskChange:
    return TaskChange(
        task.id,
        task.version,
        {"status": status.value, "finished_at": now, "settled": True, "error": error},
    )


def decide(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    now: datetime,
    layers: Sequence[LayerRecord] = (),
    child_counts: Mapping[str, Mapping[str, int]] | None = None,
    window: int = FANOUT_WINDOW,
    next_seq: int | None = None,
) -> Decision:
    """Compute the next writes for ``run``.

    ``tasks`` may leave out finished, settled fan-out children when ``child_counts`` counts
    them, and pending children beyond the ones a group may dispatch now (the group's parent
    then carries ``rendered["fanout_items"]``); ``window`` bounds the queued children of a
    group without ``max_parallel``. ``next_seq`` is the first free ``seq`` of the run when
    ``tasks`` leaves some out.
    """
    decision = Decision()
    if run.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        _settle(tasks, decision)
        return decision
    if run.deadline_at is not None and now >= run.deadline_at:
        _time_out(run, tasks, layers, now, decision)
        return decision
    if run.status == RunStatus.PENDING:
        decision.run_values = {"status": RunStatus.RUNNING.value, "started_at": now}
        timeout = run.definition.get("timeout")
        if timeout:
            decision.run_values["deadline_at"] = now + timedelta(seconds=float(timeout))
        decision.events.append(("run.started", {}))
    paused = run.status == RunStatus.PAUSED
    if paused and run.started_at is None:
        return decision  # created paused: nothing starts until an unpause
    # A paused run starts no layer; groups still fold finished children (nothing new starts).
    open_layers = set() if paused else plan_layers(layers, tasks, now, decision)
    gates = _Gates({layer.name for layer in layers}, open_layers, child_counts or {}, window)
    _advance_tasks(run, tasks, gates, now, decision, next_seq)
    _settle(tasks, decision)
    _finish_if_done(run, tasks, layers, decision, now)
    return decision


@dataclass(frozen=True, slots=True)
class _Gates:
    layer_names: set[str]
    open_layers: set[str]
    child_counts: Mapping[str, Mapping[str, int]]
    window: int


def _advance_tasks(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    gates: _Gates,
    now: datetime,
    decision: Decision,
    first_free_seq: int | None = None,
) -> None:
    paused = run.status == RunStatus.PAUSED
    by_name: dict[str, TaskRecord] = {}
    children: dict[str, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        if task.parent_id is None:
            by_name[task.name] = task
        else:
            children[task.parent_id].append(task)
    context: dict[str, Any] | None = None
    next_seq = first_free_seq or max((t.seq for t in tasks), default=0) + 1
    for task in tasks:
        if task.parent_id is not None:
            continue
        status = task.status
        if status not in (_PENDING, _RUNNING):
            continue  # queued, paused or finished: nothing to decide
        gated = paused or (task.layer in gates.layer_names and task.layer not in gates.open_layers)
        if status == _RUNNING and fanout.is_group(task):
            ready = fanout.advance_group(
                task,
                children[task.id],
                gates.child_counts.get(task.id, {}),
                not gated,
                gates.window,
                now,
                decision,
            )
            if ready:
                context = context or template_context(run, tasks)
                for child in ready:
                    _queue(child, partial(fanout.render_child, child, context), now, decision)
            continue
        if status != _PENDING or gated:
            continue
        deps = [by_name[d] for d in task.depends_on if d in by_name]
        verdict = trigger_verdict(str(task.spec.get("trigger_rule", "all_success")), deps)
        if verdict == RUN:
            context = context or template_context(run, tasks)
            next_seq = _start(task, context, now, decision, next_seq)
        elif verdict == SKIP:
            rule = task.spec.get("trigger_rule")
            decision.task_changes.append(
                _finish(task, TaskStatus.SKIPPED, f"not triggered: {rule}", now)
            )
        elif verdict == UPSTREAM_FAILED:
            decision.task_changes.append(
                _finish(
                    task,
                    TaskStatus.CANCELLED,
                    f"not run: upstream task {_first_bad(deps)!r} did not succeed",
                    now,
                )
            )


def _start(
    task: TaskRecord, context: Mapping[str, Any], now: datetime, decision: Decision, next_seq: int
) -> int:
    """A task's dependencies allow it: skip it, expand it, or queue it. Returns the next seq."""
    try:
        condition = task.spec.get("if")
        if condition is not None and not evaluate_condition(condition, context):
            decision.task_changes.append(
                _finish(task, TaskStatus.SKIPPED, f"condition was false: {condition}", now)
            )
            return next_seq
        if task.spec.get("each") is not None:
            items = fanout.render_items(task.spec, context)
            kids = fanout.expand(task, items, next_seq, now)
            change = TaskChange(
                task.id,
                task.version,
                {
                    "status": TaskStatus.RUNNING.value,
                    "started_at": now,
                    "rendered": {"fanout_items": len(items)},
                },
            )
            decision.expansions.append((change, kids))
            decision.events.append(("task.expanded", {"task": task.name, "items": len(items)}))
            return next_seq + len(kids)
        if task.spec.get("kind") == "subworkflow":
            rendered = render_task_spec(task.spec, context)
            if NONCE_FIELD in stamp(rendered, context):
                raise TemplateError(
                    f"task {task.name!r}: secrets cannot be passed to a sub-workflow; "
                    "reference them in the child definition"
                )
            decision.task_changes.append(
                TaskChange(
                    task.id,
                    task.version,
                    {"status": TaskStatus.RUNNING.value, "started_at": now, "rendered": rendered},
                )
            )
            decision.subworkflows.append((task, rendered))
            return next_seq
    except TemplateError as exc:
        decision.task_changes.append(_failed(task, exc.message, now))
        return next_seq
    _queue(task, partial(render_spec, task.spec, context), now, decision)
    return next_seq


def render_spec(spec: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """A task's spec for the worker: templates rendered, ``pre`` steps too (``post`` later)."""
    rendered = render_task_spec(spec, context)
    if spec.get("pre"):
        rendered["pre"] = [render_task_spec(step, context) for step in spec["pre"]]
    if spec.get("post"):
        # Post steps are rendered by the worker once the outcome is known; they keep these.
        rendered["post_context"] = {k: context[k] for k in ("inputs", "vars", "run")}
    return stamp(rendered, context)


def _failed(task: TaskRecord, message: str, now: datetime) -> TaskChange:
    return TaskChange(
        task.id,
        task.version,
        {"status": TaskStatus.FAILED.value, "finished_at": now, "settled": False, "error": message},
    )


def _queue(
    task: TaskRecord, render: Callable[[], dict[str, Any]], now: datetime, decision: Decision
) -> None:
    try:
        rendered = render()
    except TemplateError as exc:
        decision.task_changes.append(_failed(task, exc.message, now))
        return
    values = {
        "status": TaskStatus.QUEUED.value,
        "rendered": rendered,
        "queued_at": now,
        "available_at": now,
        "published_at": now,
    }
    decision.task_changes.append(TaskChange(task.id, task.version, values))
    decision.queued.append(task)


def _time_out(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    layers: Sequence[LayerRecord],
    now: datetime,
    decision: Decision,
) -> None:
    """The run's ``timeout`` passed: stop everything and fail the run."""
    timeout = float(run.definition.get("timeout") or 0)
    message = f"run timed out after {timeout:g}s"
    for task in tasks:
        if TaskStatus(task.status).terminal:
            continue
        if task.status == TaskStatus.RUNNING:
            decision.kills.append(task.id)
        decision.task_changes.append(_finish(task, TaskStatus.CANCELLED, message, now))
    for layer in layers:
        if layer.status in ("pending", "running"):
            decision.layer_changes.append(
                LayerChange(layer.id, layer.version, {"status": "cancelled", "finished_at": now})
            )
    decision.run_values = {
        "status": RunStatus.FAILED.value,
        "finished_at": now,
        "error": message,
    }
    decision.events.append(("run.timed_out", {"timeout": timeout}))
    decision.events.append(("run.failed", {"reason": "timeout"}))


def _settle(tasks: Sequence[TaskRecord], decision: Decision) -> None:
    changed = {c.task_id for c in decision.task_changes}
    for task in tasks:
        if not task.settled and task.status in TASK_TERMINAL and task.id not in changed:
            decision.settled.append(task.id)


def _finish_if_done(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    layers: Sequence[LayerRecord],
    decision: Decision,
    now: datetime,
) -> None:
    if run.status == RunStatus.PAUSED:
        return
    projected = {
        c.task_id: c.values["status"] for c in decision.task_changes if "status" in c.values
    }
    statuses = [(t, str(projected.get(t.id, t.status))) for t in tasks if t.parent_id is None]
    if any(s not in TASK_TERMINAL for _, s in statuses):
        return
    layer_status = {c.layer_id: c.values.get("status") for c in decision.layer_changes}
    if any(
        str(layer_status.get(layer.id) or layer.status) in ("pending", "running")
        for layer in layers
    ):
        return
    failures = [
        t for t, s in statuses if s == TaskStatus.FAILED and not t.spec.get("allow_failure")
    ]
    cancelled = [t for t, s in statuses if s == TaskStatus.CANCELLED]
    values = dict(decision.run_values or {})
    values["finished_at"] = now
    if failures or cancelled:
        first = failures[0] if failures else cancelled[0]
        reason = _failed_reason(first, decision)
        verb = "failed" if failures else "was cancelled"
        values.update(status=RunStatus.FAILED.value, error=f"task {first.name!r} {verb}: {reason}")
        decision.events.append(("run.failed", {"task": first.name}))
    else:
        values["status"] = RunStatus.COMPLETED.value
        values["error"] = None
        values["output"] = {
            t.name: t.output
            for t, s in statuses
            if s == TaskStatus.COMPLETED and t.output is not None
        }
        decision.events.append(("run.completed", {}))
    decision.run_values = values


def _failed_reason(task: TaskRecord, decision: Decision) -> str:
    for change in decision.task_changes:
        if change.task_id == task.id and "error" in change.values:
            return str(change.values["error"])
    return task.error or task.status
