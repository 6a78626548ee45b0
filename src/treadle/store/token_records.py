"""The stored form of an API token: never the token itself, only its SHA-256 and a prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    scope: str
    prefix: str  # the token's first characters: shown in lists, used to find the row
    hash: str  # hex SHA-256 of the whole token
    created_at: datetime
    last_used_at: datetime | None = None
