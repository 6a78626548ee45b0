"""treadle runs shown as Flower's ``kr_task_stat`` rows (the HTTP twin of the SQL view).

Status codes are Flower's: 0 wait, 1 running, 2 suspend, 3 finish, 9 ignore. A task whose
program failed is 2 (suspend), never 3: Flower marked failed programs finished, a bug we do not
copy. Tasks left unrun behind a failure stay 0 (wait), as in Flower; tasks of a cancelled run,
and skipped tasks, are 9 (ignore).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from treadle.store.records import RunRecord, TaskRecord

WAIT, RUNNING, SUSPEND, FINISH, IGNORE = 0, 1, 2, 3, 9
COLUMNS = (
    "task_flow_id",
    "task_exec_seq",
    "depends_task_exec_seq",
    "task_id",
    "task_seq",
    "exec_status",
    "task_priority",
    "parameters",
    "registered_ts",
    "started_ts",
    "finished_ts",
    "suspended_ts",
)


def exec_status(task_status: str, run_status: str) -> int:
    """Flower's exec_status for a task in a run (kept in step with ``pgviews``)."""
    if task_status == "running":
        return RUNNING
    if task_status == "completed":
        return FINISH
    if task_status in ("failed", "paused"):
        return SUSPEND
    if task_status == "skipped":
        return IGNORE
    if task_status == "cancelled":
        return IGNORE if run_status == "cancelled" else WAIT
    return WAIT


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def flow_rows(run: RunRecord, tasks: list[TaskRecord]) -> list[dict[str, Any]]:
    """One row per task of ``run``, ordered by task_exec_seq."""
    flower = (run.definition.get("vars") or {}).get("flower") or {}
    facts = flower.get("tasks") or {}
    seq_of = {t.name: t.seq + 1 for t in tasks}
    rows = []
    for task in sorted(tasks, key=lambda t: t.seq):
        fact = facts.get(task.name) or {}
        status = exec_status(task.status, run.status)
        first_dep = task.depends_on[0] if task.depends_on else None
        parameters = fact.get("parameters")
        if parameters is None:
            parameters = task.spec.get("args") or {}
        rows.append(
            {
                "task_flow_id": run.id,
                "task_exec_seq": task.seq + 1,
                "depends_task_exec_seq": seq_of.get(first_dep, -1) if first_dep else -1,
                "task_id": flower.get("task_id") or run.definition_name,
                "task_seq": fact.get("task_seq", task.seq + 1),
                "exec_status": status,
                "task_priority": fact.get("task_priority", -task.priority),
                "parameters": parameters,
                "registered_ts": _iso(task.created_at),
                "started_ts": _iso(task.started_at),
                "finished_ts": _iso(task.finished_at) if status == FINISH else None,
                "suspended_ts": _iso(task.finished_at) if task.status == "failed" else None,
            }
        )
    return rows
