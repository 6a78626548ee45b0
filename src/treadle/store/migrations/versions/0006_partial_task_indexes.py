"""partial task indexes: claims, the dispatch sweep and queue depths read only unfinished rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")
_ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    # (queue, status, priority) made every claim sort all queued tasks of its queue (10,000
    # queued tasks: thousands of rows read per claim), and SQLite's planner preferred
    # (status, available_at) for a claim, sorting as well. Partial indexes hold only the rows
    # that are queued (or running), in the order their readers take them.
    op.drop_index("ix_treadle_tasks_queue_status", table_name="treadle_tasks")
    op.drop_index("ix_treadle_tasks_status_available", table_name="treadle_tasks")
    op.create_index(
        "ix_treadle_tasks_ready",
        "treadle_tasks",
        ["queue", sa.text("priority DESC"), "available_at", "seq"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    op.create_index(
        "ix_treadle_tasks_due",
        "treadle_tasks",
        [sa.text("priority DESC"), "available_at"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    op.create_index(
        "ix_treadle_tasks_active",
        "treadle_tasks",
        ["queue", "status"],
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )


def downgrade() -> None:
    for name in ("ix_treadle_tasks_active", "ix_treadle_tasks_due", "ix_treadle_tasks_ready"):
        op.drop_index(name, table_name="treadle_tasks")
    op.create_index(
        "ix_treadle_tasks_status_available", "treadle_tasks", ["status", "available_at"]
    )
    op.create_index(
        "ix_treadle_tasks_queue_status", "treadle_tasks", ["queue", "status", "priority"]
    )
