"""SQL implementation of :class:`~treadle.store.secrets_base.SecretStore` (mixed into SqlStore)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from treadle.errors import NotFound
from treadle.store.schema import UTCDateTime, metadata
from treadle.store.secrets_base import SecretRecord

# Created by migration 0005.
secrets = Table(
    "treadle_secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
_S = secrets.c


def _record(row: Any) -> SecretRecord:
    m = row._mapping
    return SecretRecord(m["name"], m["ciphertext"], m["created_at"], m["updated_at"])


class SqlSecretsMixin:
    """Secrets over SQLAlchemy Core."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def now(self) -> datetime: ...

    async def put_secret(self, name: str, ciphertext: str) -> SecretRecord:
        for _ in range(3):
            now = await self.now()
            try:
                async with self._tx() as conn:
                    changed = await conn.execute(
                        update(secrets)
                        .where(_S.name == name)
                        .values(ciphertext=ciphertext, updated_at=now)
                    )
                    if changed.rowcount == 0:
                        # A concurrent first write raises IntegrityError: go round as an update.
                        await conn.execute(
                            insert(secrets).values(
                                name=name, ciphertext=ciphertext, created_at=now, updated_at=now
                            )
                        )
                    row = (await conn.execute(select(secrets).where(_S.name == name))).one()
                return _record(row)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not store secret {name!r}: kept racing another writer")

    async def get_secrets(self, names: Sequence[str]) -> dict[str, SecretRecord]:
        if not names:
            return {}
        async with self._tx() as conn:
            rows = (await conn.execute(select(secrets).where(_S.name.in_(list(names))))).all()
        return {r.name: _record(r) for r in rows}

    async def list_secrets(self) -> list[SecretRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(secrets).order_by(_S.name))).all()
        return [_record(r) for r in rows]

    async def delete_secret(self, name: str) -> None:
        async with self._tx() as conn:
            result = await conn.execute(delete(secrets).where(_S.name == name))
        if result.rowcount != 1:
            raise NotFound(f"no secret {name!r}")
