"""Fan-out (``each``): expand a ready task into one child per item and fold the results back.

Pure decisions, like :mod:`treadle.engine.scheduler`. A ready task with ``each`` becomes a
*group*: its children (``name[0]``, ``name[1]``...) are inserted as new task rows pointing at it
through ``parent_id``, and the parent stays ``running`` until every child has finished. Its output
is then the list of the children's outputs, in item order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.errors import TemplateError
from treadle.model.states import TaskStatus
from treadle.model.templating import render_string, render_task_spec
from treadle.secrets.refs import stamp
from treadle.store.records import TaskChange, TaskRecord

if TYPE_CHECKING:
    from treadle.engine.scheduler import Decision

MAX_ITEMS = 100_000
# Spec keys a child does not inherit: they belong to the group.
_GROUP_ONLY = ("each", "max_parallel", "if", "trigger_rule", "paused", "depends_on")
_ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)


def render_items(spec: Mapping[str, Any], context: Mapping[str, Any]) -> list[Any]:
    """The list ``each`` stands for; raises :class:`TemplateError` naming what is wrong."""
    source = spec.get("each")
    items = render_string(source, context, "each") if isinstance(source, str) else source
    if isinstance(items, dict):
        items = list(items.items())
    if not isinstance(items, list | tuple):
        raise TemplateError(
            f"`each` must give a list, got {type(items).__name__}: {str(items)[:100]!r}"
        )
    if len(items) > MAX_ITEMS:
        raise TemplateError(f"`each` gave {len(items)} items; the limit is {MAX_ITEMS}")
    return list(items)


def expand(
    parent: TaskRecord, items: Sequence[Any], first_seq: int, now: datetime
) -> list[TaskRecord]:
    """One pending child task per item."""
    base = {k: v for k, v in parent.spec.items() if k not in _GROUP_ONLY}
    children = []
    for index, item in enumerate(items):
        spec = {**base, "name": f"{parent.name}[{index}]", "fanout": {"index": index, "item": item}}
        children.append(
            TaskRecord(
                id=uuid.uuid4().hex,
                run_id=parent.run_id,
                name=spec["name"],
                seq=first_seq + index,
                status=TaskStatus.PENDING.value,
                spec=spec,
                depends_on=[],
                queue=parent.queue,
                priority=parent.priority,
                created_at=now,
                layer=parent.layer,
                parent_id=parent.id,
            )
        )
    return children


def child_context(context: Mapping[str, Any], child: TaskRecord) -> dict[str, Any]:
    fan = child.spec.get("fanout") or {}
    return {**context, "item": fan.get("item"), "index": fan.get("index", 0)}


def render_child(child: TaskRecord, context: Mapping[str, Any]) -> dict[str, Any]:
    """The child's spec with templates rendered; ``item`` values are data, never templates."""
    spec = {k: v for k, v in child.spec.items() if k != "fanout"}
    return stamp(render_task_spec(spec, child_context(context, child)), context)


def _index(task: TaskRecord) -> int:
    return int((task.spec.get("fanout") or {}).get("index", task.seq))


def is_group(task: TaskRecord) -> bool:
    """Whether ``task`` fans out (once running, it is a group of children)."""
    return task.spec.get("each") is not None


def advance_group(
    parent: TaskRecord,
    children: Sequence[TaskRecord],
    settled: Mapping[str, int],
    can_dispatch: bool,
    window: int,
    now: datetime,
    decision: Decision,
) -> list[TaskRecord]:
    """Step a running group; return the pending children that may be dispatched now.

    ``children`` are the open ones (not finished, or finished but not yet seen);
    ``settled`` counts the others by status, so a pass costs O(open children).
    """
    ordered = sorted(children, key=_index)
    failed_before = settled.get(TaskStatus.FAILED, 0) + settled.get(TaskStatus.CANCELLED, 0)
    failing = [c for c in ordered if c.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
    fail_fast = bool(failed_before or failing) and not parent.spec.get("allow_failure")
    pending = [c for c in ordered if c.status == TaskStatus.PENDING]
    if fail_fast and pending:
        # One child failed and the group may not fail: do not start the rest.
        why = f"not run: {failing[0].name} failed" if failing else "not run: an item failed"
        for child in pending:
            decision.task_changes.append(
                TaskChange(
                    child.id,
                    child.version,
                    {
                        "status": TaskStatus.CANCELLED.value,
                        "finished_at": now,
                        "settled": True,
                        "error": why,
                    },
                )
            )
        return []
    total = int((parent.rendered or {}).get("fanout_items", len(ordered) + sum(settled.values())))
    finished = sum(settled.values()) + sum(1 for c in ordered if TaskStatus(c.status).terminal)
    if finished >= total:
        decision.groups_done.append(parent)
        return []
    if not can_dispatch:
        return []
    limit = int(parent.spec.get("max_parallel") or window)
    active = sum(1 for c in ordered if c.status in _ACTIVE)
    return pending[: max(0, limit - active)]


def finish_group(parent: TaskRecord, children: Sequence[TaskRecord], now: datetime) -> TaskChange:
    """The parent's final change once every child finished: the list of outputs, in order."""
    ordered = sorted(children, key=_index)
    failed = [c for c in ordered if c.status == TaskStatus.FAILED]
    failed += [c for c in ordered if c.status == TaskStatus.CANCELLED]
    values: dict[str, Any] = {
        "output": [c.output for c in ordered],
        "finished_at": now,
        "settled": False,
    }
    if failed:
        first = failed[0]
        values["status"] = TaskStatus.FAILED.value
        values["error"] = (
            f"{len(failed)} of {len(ordered)} items failed; first {first.name}: {first.error}"
        )
    else:
        values["status"] = TaskStatus.COMPLETED.value
        values["error"] = None
    return TaskChange(parent.id, parent.version, values)
