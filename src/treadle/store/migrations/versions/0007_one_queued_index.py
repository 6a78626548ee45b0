"""one index over queued tasks: claims, the dispatch sweep and queued depths share it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")
_RUNNING = sa.text("status = 'running'")
_ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    # ix_treadle_tasks_active (queue, status) could answer a claim as well as
    # ix_treadle_tasks_ready; before the table's first ANALYZE, PostgreSQL's planner took it and
    # sorted every queued task of the queue on each claim. ix_treadle_tasks_due could serve a claim
    # too (with an incremental sort): the same choice to get wrong. Only running rows get an
    # index of their own now; the sweep reads ix_treadle_tasks_ready queue by queue.
    op.drop_index("ix_treadle_tasks_active", table_name="treadle_tasks")
    op.drop_index("ix_treadle_tasks_due", table_name="treadle_tasks")
    op.create_index(
        "ix_treadle_tasks_running",
        "treadle_tasks",
        ["queue"],
        postgresql_where=_RUNNING,
        sqlite_where=_RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_treadle_tasks_running", table_name="treadle_tasks")
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
