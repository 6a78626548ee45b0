"""Redis implementation of :class:`~treadle.store.secrets_base.SecretStore` (mixed into
RedisStore): one hash per secret (``secret:<name>``) and a set of names (``secrets``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.errors import NotFound
from treadle.store.redis_codec import from_micros, to_micros
from treadle.store.secrets_base import SecretRecord


def _record(name: str, fields: dict[str, str]) -> SecretRecord:
    return SecretRecord(
        name,
        fields["ciphertext"],
        from_micros(fields["created_at"]),
        from_micros(fields["updated_at"]),
    )


class RedisSecretsMixin:
    """Secrets on Redis; each write is one MULTI/EXEC transaction."""

    if TYPE_CHECKING:
        client: Any

        def _k(self, *parts: str) -> str: ...

        def _io(self) -> AbstractAsyncContextManager[None]: ...

        async def now(self) -> datetime: ...

    async def put_secret(self, name: str, ciphertext: str) -> SecretRecord:
        now = str(to_micros(await self.now()))
        key = self._k("secret:", name)
        async with self._io():
            pipe = self.client.pipeline(transaction=True)
            pipe.hsetnx(key, "created_at", now)
            pipe.hset(key, mapping={"ciphertext": ciphertext, "updated_at": now})
            pipe.sadd(self._k("secrets"), name)
            pipe.hgetall(key)
            replies = await pipe.execute()
        return _record(name, replies[-1])

    async def get_secrets(self, names: Sequence[str]) -> dict[str, SecretRecord]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        async with self._io():
            pipe = self.client.pipeline(transaction=False)
            for name in wanted:
                pipe.hgetall(self._k("secret:", name))
            rows = await pipe.execute()
        return {name: _record(name, row) for name, row in zip(wanted, rows, strict=True) if row}

    async def list_secrets(self) -> list[SecretRecord]:
        async with self._io():
            names = sorted(await self.client.smembers(self._k("secrets")))
        found = await self.get_secrets(names)
        return [found[name] for name in names if name in found]

    async def delete_secret(self, name: str) -> None:
        async with self._io():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._k("secret:", name))
            pipe.srem(self._k("secrets"), name)
            deleted, _ = await pipe.execute()
        if not deleted:
            raise NotFound(f"no secret {name!r}")
