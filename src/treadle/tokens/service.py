"""Issue, check and revoke API tokens.

A token is ``trd_`` plus 43 URL-safe characters from :func:`secrets.token_urlsafe` (256 bits).
The store keeps its SHA-256 and its first :data:`PREFIX_LENGTH` characters: the prefix finds
the row and shows which token is which; the hash is compared in constant time. The token
itself is printed once, when it is made, and is stored nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta

from treadle.errors import DefinitionError
from treadle.store.token_records import TokenRecord
from treadle.store.tokens_base import TokenStore
from treadle.tokens.scopes import Scope

MARK = "trd_"
PREFIX_LENGTH = len(MARK) + 8
#: ``last_used_at`` is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(minutes=1)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_SHAPE = re.compile(r"^trd_[A-Za-z0-9_-]{20,200}$")
_SCOPE_NAMES = frozenset(s.value for s in Scope)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    """The name if it is usable; DefinitionError (422) naming the rule otherwise."""
    if not _NAME.match(name):
        raise DefinitionError(
            f"bad token name {name!r}: 1-100 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


async def issue_token(
    store: TokenStore, name: str, scope: Scope, now: datetime
) -> tuple[str, TokenRecord]:
    """Make and store a token; returns (the token, its stored record)."""
    raw = MARK + secrets.token_urlsafe(32)
    record = TokenRecord(
        id=uuid.uuid4().hex,
        name=check_name(name),
        scope=scope.value,
        prefix=raw[:PREFIX_LENGTH],
        hash=token_hash(raw),
        created_at=now,
    )
    return raw, await store.put_token(record)


async def verify_token(store: TokenStore, raw: str, now: datetime) -> TokenRecord | None:
    """The record of a valid token; None for anything else (unknown, revoked, malformed)."""
    if not _SHAPE.match(raw):
        return None
    digest = token_hash(raw)
    found = None
    for record in await store.tokens_by_prefix(raw[:PREFIX_LENGTH]):
        if hmac.compare_digest(record.hash, digest):
            found = record
    if found is None or found.scope not in _SCOPE_NAMES:
        return None
    if found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY:
        await store.touch_token(found.id, now)
    return found


async def revoke_token(store: TokenStore, name_or_id: str) -> TokenRecord:
    """Delete a token by name or id (NotFound names it); it stops working at once."""
    return await store.delete_token(name_or_id)
