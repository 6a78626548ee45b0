"""The run page's parts, rendered from one :class:`~treadle.ui.data.RunSnapshot`.

The page is drawn once in full; afterwards the live stream re-renders each part and sends only
the parts whose HTML changed, so the browser swaps as little as possible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from treadle.store.records import TaskRecord
from treadle.ui.actions import buttons
from treadle.ui.data import RunSnapshot
from treadle.ui.graph_svg import NodeState, render_graph
from treadle.ui.layout import GraphTask, layout_graph
from treadle.ui.timeline_svg import Bar, Row, render_timeline
from treadle.ui.web import fragment

#: The live parts of the page, in the order the stream sends them.
PARTS = ("summary", "graph", "timeline", "tasks", "task", "events")
_PREFERRED = ("failed", "running", "paused", "queued")


def task_href(run_id: str, name: str) -> str:
    return f"/ui/runs/{run_id}?task={quote(name, safe='')}#task"


def pick_task(snap: RunSnapshot, wanted: str | None) -> TaskRecord | None:
    """The task the page details: the one asked for, else the first that needs attention."""
    chosen = snap.task(wanted) if wanted else None
    if chosen is not None:
        return chosen
    for status in _PREFERRED:
        for task in snap.tasks:
            if task.status == status:
                return task
    return snap.tasks[0] if snap.tasks else None


def _note(snap: RunSnapshot, task: TaskRecord) -> str:
    children = snap.children(task)
    if children:
        done = sum(1 for c in children if c.status in ("completed", "skipped"))
        return f"{len(children)} items, {done} done"
    if task.attempt_count > 1:
        return f"{task.attempt_count} attempts"
    return ""


def graph_html(snap: RunSnapshot, selected: str | None) -> str:
    top = snap.top_level()
    graph = [GraphTask(t.name, tuple(t.depends_on), t.layer) for t in top]
    layout = layout_graph(graph, [layer.name for layer in snap.layers])
    states = {t.name: NodeState(t.status, _note(snap, t)) for t in top}
    return render_graph(
        layout,
        states,
        href=lambda name: task_href(snap.run.id, name),
        selected=selected,
        title=f"Task graph of run {snap.run.id}",
    )


def timeline_html(snap: RunSnapshot) -> str:
    rows = []
    starts: list[datetime] = []
    for task in snap.tasks:
        attempts = snap.attempts.get(task.id, [])
        if not attempts:
            continue
        bars = tuple(Bar(a.number, a.status, a.started_at, a.finished_at) for a in attempts)
        starts.extend(a.started_at for a in attempts)
        rows.append(Row(task.name, bars))
    origin = min([snap.run.started_at or snap.run.created_at, *starts])
    return render_timeline(rows, origin, snap.now)


def render_parts(snap: RunSnapshot, selected_name: str | None) -> dict[str, str]:
    """HTML of every live part, keyed by :data:`PARTS` names."""
    selected = pick_task(snap, selected_name)
    context: dict[str, Any] = {
        "snap": snap,
        "run": snap.run,
        "now": snap.now,
        "selected": selected,
        "buttons": buttons,
        "task_href": task_href,
    }
    return {
        "summary": fragment("_run_summary.html", **context),
        "graph": graph_html(snap, selected.name if selected else None),
        "timeline": timeline_html(snap),
        "tasks": fragment("_run_tasks.html", **context),
        "task": fragment("_task_detail.html", **context),
        "events": fragment("_run_events.html", **context),
    }
