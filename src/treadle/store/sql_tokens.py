"""SQL implementation of :class:`~treadle.store.tokens_base.TokenStore` (mixed into SqlStore)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from treadle.errors import Conflict, NotFound
from treadle.store.schema_tokens import api_tokens
from treadle.store.token_records import TokenRecord

_C = api_tokens.c
_FIELDS = [f.name for f in fields(TokenRecord)]


def _token(row: Any) -> TokenRecord:
    m = row._mapping
    return TokenRecord(**{name: m[name] for name in _FIELDS})


class SqlTokensMixin:
    """API tokens over SQLAlchemy Core."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def put_token(self, token: TokenRecord) -> TokenRecord:
        try:
            async with self._tx() as conn:
                await conn.execute(insert(api_tokens).values(asdict(token)))
        except IntegrityError as exc:
            raise Conflict(f"a token named {token.name!r} exists already") from exc
        return token

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(api_tokens).order_by(_C.name))).all()
        return [_token(r) for r in rows]

    async def tokens_by_prefix(self, prefix: str) -> list[TokenRecord]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(api_tokens).where(_C.prefix == prefix))).all()
        return [_token(r) for r in rows]

    async def delete_token(self, name_or_id: str) -> TokenRecord:
        async with self._tx() as conn:
            # A name wins over an id (names are the user's handle on a token).
            row = (await conn.execute(select(api_tokens).where(_C.name == name_or_id))).first()
            if row is None:
                query = select(api_tokens).where(_C.id == name_or_id)
                row = (await conn.execute(query)).first()
            if row is not None:
                await conn.execute(delete(api_tokens).where(_C.id == row._mapping["id"]))
        if row is None:
            raise NotFound(f"no token named {name_or_id!r} (nor with that id)")
        return _token(row)

    async def touch_token(self, token_id: str, at: datetime) -> None:
        async with self._tx() as conn:
            await conn.execute(update(api_tokens).where(_C.id == token_id).values(last_used_at=at))
