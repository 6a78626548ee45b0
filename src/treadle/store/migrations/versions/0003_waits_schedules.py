"""waits, signals, concurrency and rate slots, schedules, hooks, callbacks

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treadle.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "treadle_waits",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        _at("wake_at"),
        sa.Column("signal", sa.String(length=200), nullable=True),
        sa.Column("on_wake", sa.String(length=16), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("treadle_waits", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_waits_signal", ["run_id", "signal"], unique=False)
        batch_op.create_index("ix_treadle_waits_wake", ["wake_at"], unique=False)

    op.create_table(
        "treadle_signals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        _at("created_at", nullable=False),
        sa.Column("consumed_by", sa.String(length=40), nullable=True),
        _at("consumed_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("treadle_signals", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_signals_run_name", ["run_id", "name", "id"], unique=False)

    op.create_table(
        "treadle_run_slots",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    with op.batch_alter_table("treadle_run_slots", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_run_slots_key", ["key", "admitted"], unique=False)

    op.create_table(
        "treadle_limit_locks",
        sa.Column("key", sa.String(length=400), nullable=False),
        _at("next_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "treadle_task_slots",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=80), nullable=False),
        _at("slot_at", nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("treadle_task_slots", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_task_slots_run", ["run_id"], unique=False)

    op.create_table(
        "treadle_schedules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition_name", sa.String(length=200), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=100), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("overlap", sa.String(length=10), nullable=False),
        sa.Column("catchup", sa.String(length=10), nullable=False),
        sa.Column("grace", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        _at("next_fire_at"),
        _at("last_fire_at"),
        sa.Column("last_run_id", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        _at("created_at", nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("treadle_schedules", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_schedules_due", ["paused", "next_fire_at"], unique=False)

    op.create_table(
        "treadle_hooks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition_name", sa.String(length=200), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=True),
        sa.Column("secret", sa.String(length=400), nullable=True),
        sa.Column("secret_env", sa.String(length=200), nullable=True),
        sa.Column("inputs_key", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "treadle_callbacks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("secret_env", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _at("created_at", nullable=False),
        _at("next_at", nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("treadle_callbacks", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_callbacks_due", ["status", "next_at"], unique=False)
        batch_op.create_index("ix_treadle_callbacks_run", ["run_id"], unique=False)


def downgrade() -> None:
    for table in (
        "treadle_callbacks",
        "treadle_hooks",
        "treadle_schedules",
        "treadle_task_slots",
        "treadle_limit_locks",
        "treadle_run_slots",
        "treadle_signals",
        "treadle_waits",
    ):
        op.drop_table(table)
