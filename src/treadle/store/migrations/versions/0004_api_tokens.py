"""API tokens (stored as SHA-256 hashes with a display prefix)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treadle.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "treadle_api_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_treadle_api_tokens_name"),
    )
    with op.batch_alter_table("treadle_api_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_treadle_api_tokens_prefix", ["prefix"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("treadle_api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_treadle_api_tokens_prefix")
    op.drop_table("treadle_api_tokens")
