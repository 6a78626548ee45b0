"""The ``treadle_api_tokens`` table (on the shared ``metadata``; migration 0004 creates it)."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from treadle.store.schema import UTCDateTime, metadata

api_tokens = Table(
    "treadle_api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("scope", String(16), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Index("ix_treadle_api_tokens_prefix", "prefix"),
)
