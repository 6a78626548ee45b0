"""API tokens on Redis (mixed into RedisStore).

Keys under the store's prefix: ``token:<id>`` is a hash holding the record; ``tokens`` maps
name -> id (HSETNX makes names unique); ``token-prefix:<prefix>`` is the set of ids with that
display prefix (the lookup index). Writes are Lua scripts, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.errors import Conflict, NotFound
from treadle.store.redis_codec import from_micros, pairs, to_micros
from treadle.store.token_records import TokenRecord

PUT_TOKEN = """
local p, id, name, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HSETNX', p .. 'tokens', name, id) == 0 then return 0 end
redis.call('HSET', p .. 'token:' .. id, unpack(ARGV, 5))
redis.call('SADD', p .. 'token-prefix:' .. prefix, id)
return 1
"""

DELETE_TOKEN = """
local p, wanted = ARGV[1], ARGV[2]
local id = redis.call('HGET', p .. 'tokens', wanted)
if not id then id = wanted end
local row = redis.call('HGETALL', p .. 'token:' .. id)
if #row == 0 then return false end
local f = {}
for i = 1, #row, 2 do f[row[i]] = row[i + 1] end
redis.call('HDEL', p .. 'tokens', f['name'])
redis.call('SREM', p .. 'token-prefix:' .. f['prefix'], id)
redis.call('DEL', p .. 'token:' .. id)
return row
"""

TOUCH_TOKEN = """
local key = ARGV[1] .. 'token:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'last_used_at', ARGV[3]) end
return 1
"""


def _fields(token: TokenRecord) -> list[str]:
    flat = [
        "id", token.id, "name", token.name, "scope", token.scope,
        "prefix", token.prefix, "hash", token.hash,
        "created_at", str(to_micros(token.created_at)),
    ]  # fmt: skip
    if token.last_used_at is not None:
        flat += ["last_used_at", str(to_micros(token.last_used_at))]
    return flat


def _decode(row: dict[str, str]) -> TokenRecord:
    used = row.get("last_used_at")
    return TokenRecord(
        id=row["id"],
        name=row["name"],
        scope=row["scope"],
        prefix=row["prefix"],
        hash=row["hash"],
        created_at=from_micros(row["created_at"]),
        last_used_at=from_micros(used) if used else None,
    )


class RedisTokensMixin:
    """The :class:`~treadle.store.tokens_base.TokenStore` part of RedisStore."""

    if TYPE_CHECKING:
        client: Any

        def _k(self, *parts: str) -> str: ...

        def _io(self) -> AbstractAsyncContextManager[None]: ...

        async def _script(self, source: str, args: Sequence[Any]) -> Any: ...

        async def _hashes(self, keys: Sequence[str]) -> list[dict[str, str]]: ...

    async def put_token(self, token: TokenRecord) -> TokenRecord:
        args = [token.id, token.name, token.prefix, *_fields(token)]
        if not await self._script(PUT_TOKEN, args):
            raise Conflict(f"a token named {token.name!r} exists already")
        return token

    async def _tokens(self, ids: Sequence[str]) -> list[TokenRecord]:
        rows = await self._hashes([self._k("token:", i) for i in ids])
        return [_decode(row) for row in rows if row]

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._io():
            ids = await self.client.hvals(self._k("tokens"))
        return sorted(await self._tokens(ids), key=lambda t: t.name)

    async def tokens_by_prefix(self, prefix: str) -> list[TokenRecord]:
        async with self._io():
            ids = sorted(await self.client.smembers(self._k("token-prefix:", prefix)))
        return await self._tokens(ids)

    async def delete_token(self, name_or_id: str) -> TokenRecord:
        row = await self._script(DELETE_TOKEN, [name_or_id])
        if not row:
            raise NotFound(f"no token named {name_or_id!r} (nor with that id)")
        return _decode(pairs(row))

    async def touch_token(self, token_id: str, at: datetime) -> None:
        await self._script(TOUCH_TOKEN, [token_id, str(to_micros(at))])
