"""Store primitives for API tokens (part of the :class:`~treadle.store.base.Store` protocol)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from treadle.store.token_records import TokenRecord


@runtime_checkable
class TokenStore(Protocol):
    async def put_token(self, token: TokenRecord) -> TokenRecord:
        """Store a new token; Conflict when its name (or id) is taken."""

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, by name."""

    async def tokens_by_prefix(self, prefix: str) -> list[TokenRecord]:
        """Tokens whose ``prefix`` is exactly this (normally zero or one)."""

    async def delete_token(self, name_or_id: str) -> TokenRecord:
        """Remove the token with this name or id and return it; NotFound otherwise."""

    async def touch_token(self, token_id: str, at: datetime) -> None:
        """Record that the token was used at ``at`` (no error if it is gone)."""
