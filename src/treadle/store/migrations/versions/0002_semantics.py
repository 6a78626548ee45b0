"""semantics: fan-out parents, run deadlines, layers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import treadle.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("treadle_tasks", schema=None) as batch_op:
        # A fan-out child points at the task that expanded it (``each``).
        batch_op.add_column(sa.Column("parent_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_treadle_tasks_parent", ["parent_id"], unique=False)
        batch_op.create_index(
            "ix_treadle_tasks_queue_status", ["queue", "status", "priority"], unique=False
        )
    with op.batch_alter_table("treadle_runs", schema=None) as batch_op:
        # When the run's own ``timeout`` runs out; swept by the coordinator.
        batch_op.add_column(
            sa.Column("deadline_at", treadle.store.schema.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_treadle_runs_deadline", ["deadline_at"], unique=False)
    op.create_table(
        "treadle_layers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", treadle.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", treadle.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", treadle.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("treadle_layers", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_layers_run", ["run_id", "priority"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("treadle_layers", schema=None) as batch_op:
        batch_op.drop_index("ix_treadle_layers_run")
    op.drop_table("treadle_layers")
    with op.batch_alter_table("treadle_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_treadle_runs_deadline")
        batch_op.drop_column("deadline_at")
    with op.batch_alter_table("treadle_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_treadle_tasks_queue_status")
        batch_op.drop_index("ix_treadle_tasks_parent")
        batch_op.drop_column("parent_id")
