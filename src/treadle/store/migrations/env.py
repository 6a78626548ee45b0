"""Alembic environment: runs on the connection treadle hands over (see treadle.store.migrate)."""

from __future__ import annotations

from alembic import context

from treadle.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand
    raise RuntimeError("run migrations with `treadle migrate --db URL`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="treadle_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
