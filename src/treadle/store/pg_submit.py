"""A new run on PostgreSQL in one statement on the raw asyncpg connection.

Through SQLAlchemy a run's creation was BEGIN, the run's INSERT, the tasks' INSERT, the
events' INSERT and COMMIT: five round trips on every submit, which is most of a short run's
submit-to-start latency. Here the run is one row of parameters, the tasks and events are
arrays (``unnest``), and data-modifying CTEs write all three in one atomic statement. The
results are those of :meth:`~treadle.store.sql.SqlStore.create_run`, which a contract test
compares on the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table

from treadle.store import schema as t
from treadle.store.pg_pass import encoded, encoded_column, is_json, sql_type
from treadle.store.records import RunRecord, TaskRecord


def _value(table: Table, name: str) -> str:
    """How a column's parameter or unnested value is written into its column."""
    return f"{name}::json" if is_json(table, name) else name


RUN_FIELDS = tuple(RunRecord.__slots__)
TASK_FIELDS = tuple(TaskRecord.__slots__)


def _statement() -> str:
    run_params = ", ".join(
        f"${n}::{sql_type(t.runs, name)}" + ("::json" if is_json(t.runs, name) else "")
        for n, name in enumerate(RUN_FIELDS, 1)
    )
    first = len(RUN_FIELDS) + 1
    task_arrays = ", ".join(
        f"${n}::{sql_type(t.tasks, name)}[]" for n, name in enumerate(TASK_FIELDS, first)
    )
    task_values = ", ".join(_value(t.tasks, name) for name in TASK_FIELDS)
    events = first + len(TASK_FIELDS)
    run_id = RUN_FIELDS.index("id") + 1
    created = RUN_FIELDS.index("created_at") + 1
    return f"""
WITH new_run AS (
    INSERT INTO {t.runs.name} ({", ".join(RUN_FIELDS)}) VALUES ({run_params})
), new_tasks AS (
    INSERT INTO {t.tasks.name} ({", ".join(TASK_FIELDS)})
    SELECT {task_values} FROM unnest({task_arrays}) AS v({", ".join(TASK_FIELDS)})
), new_events AS (
    INSERT INTO {t.events.name} (run_id, at, kind, actor, detail)
    SELECT ${run_id}::text, ${created}::timestamptz, kind, actor, detail::json
    FROM unnest(${events}::text[], ${events + 1}::text[], ${events + 2}::text[])
        AS e(kind, actor, detail)
)
SELECT 1
"""


CREATE_RUN = _statement()


def create_run_args(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    events: Sequence[tuple[str, str, dict[str, Any]]],
    dumps: Callable[[Any], str],
) -> list[Any]:
    """The parameters of :data:`CREATE_RUN`: the run's fields, one array per task field, then
    the events' kinds, actors and details."""
    args = [encoded(t.runs, name, getattr(run, name), dumps) for name in RUN_FIELDS]
    args.extend(encoded_column(t.tasks, name, tasks, dumps) for name in TASK_FIELDS)
    args.append([kind for kind, _, _ in events])
    args.append([actor for _, actor, _ in events])
    args.append([dumps(detail) for _, _, detail in events])
    return args
