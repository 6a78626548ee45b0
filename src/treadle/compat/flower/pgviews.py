"""The ``kr_task_stat`` view for PostgreSQL stores: Flower's table, read from treadle's tasks.

Tools and queries written for Flower's ``kr_task_stat`` keep working read-only. The view is
created in the store's schema (its ``search_path``) by :func:`create_flower_views`; the rows
match :func:`treadle.compat.flower.views.flow_rows`.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

VIEW_NAME = "kr_task_stat"

_FACT = "(r.definition::json -> 'vars' -> 'flower' -> 'tasks' -> t.name)"

KR_TASK_STAT_SQL = f"""
CREATE OR REPLACE VIEW {VIEW_NAME} AS
SELECT
    CAST(t.run_id AS varchar(256)) AS task_flow_id,
    CAST(t.seq + 1 AS numeric) AS task_exec_seq,
    CAST(COALESCE(
        (SELECT d.seq + 1 FROM treadle_tasks d
          WHERE d.run_id = t.run_id AND d.name = (t.depends_on::json ->> 0)),
        -1) AS numeric) AS depends_task_exec_seq,
    CAST(COALESCE(r.definition::json -> 'vars' -> 'flower' ->> 'task_id', r.definition_name)
         AS varchar(256)) AS task_id,
    COALESCE(CAST({_FACT} ->> 'task_seq' AS numeric), CAST(t.seq + 1 AS numeric)) AS task_seq,
    CAST(CASE t.status
        WHEN 'running' THEN 1
        WHEN 'completed' THEN 3
        WHEN 'failed' THEN 2
        WHEN 'paused' THEN 2
        WHEN 'skipped' THEN 9
        WHEN 'cancelled' THEN CASE WHEN r.status = 'cancelled' THEN 9 ELSE 0 END
        ELSE 0
    END AS numeric) AS exec_status,
    COALESCE(CAST({_FACT} ->> 'task_priority' AS numeric), CAST(-t.priority AS numeric))
        AS task_priority,
    COALESCE({_FACT} -> 'parameters', t.spec::json -> 'args', '{{}}'::json) AS parameters,
    t.created_at AS registered_ts,
    t.started_at AS started_ts,
    CASE WHEN t.status = 'completed' THEN t.finished_at END AS finished_ts,
    CASE WHEN t.status = 'failed' THEN t.finished_at END AS suspended_ts
FROM treadle_tasks t
JOIN treadle_runs r ON r.id = t.run_id
"""


def flower_view_statements() -> list[str]:
    """The DDL, for callers with a plain connection (an Alembic migration, psql)."""
    return [KR_TASK_STAT_SQL]


async def create_flower_views(conn: AsyncConnection) -> None:
    """Create (or replace) ``kr_task_stat`` on a PostgreSQL connection holding treadle's tables."""
    if conn.dialect.name != "postgresql":
        raise ValueError(f"kr_task_stat is a PostgreSQL view; this store is {conn.dialect.name}")
    for statement in flower_view_statements():
        await conn.execute(text(statement))
