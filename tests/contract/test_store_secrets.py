"""Store contract: secrets (ciphertext kept by name; the store never decrypts)."""

from __future__ import annotations

import asyncio

import pytest

from treadle.errors import NotFound
from treadle.store.base import Store


async def test_put_get_list_delete(store: Store) -> None:
    assert await store.list_secrets() == []
    assert await store.get_secrets(["nope"]) == {}
    first = await store.put_secret("db_password", "token-1")
    assert first.name == "db_password"
    assert first.ciphertext == "token-1"
    assert first.created_at == first.updated_at
    await store.put_secret("api-key", "token-2")
    assert [s.name for s in await store.list_secrets()] == ["api-key", "db_password"]
    found = await store.get_secrets(["db_password", "missing", "api-key"])
    assert {n: s.ciphertext for n, s in found.items()} == {
        "db_password": "token-1",
        "api-key": "token-2",
    }
    await store.delete_secret("api-key")
    assert [s.name for s in await store.list_secrets()] == ["db_password"]
    with pytest.raises(NotFound, match="api-key"):
        await store.delete_secret("api-key")


async def test_replace_keeps_created_at_and_moves_updated_at(store: Store) -> None:
    first = await store.put_secret("token", "old")
    await asyncio.sleep(0.01)
    second = await store.put_secret("token", "new")
    assert second.ciphertext == "new"
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert (await store.get_secrets(["token"]))["token"].ciphertext == "new"
    assert len(await store.list_secrets()) == 1


async def test_concurrent_first_writes_leave_one_row(store: Store) -> None:
    await asyncio.gather(*(store.put_secret("raced", f"v{i}") for i in range(8)))
    rows = await store.list_secrets()
    assert [r.name for r in rows] == ["raced"]
    assert rows[0].ciphertext in {f"v{i}" for i in range(8)}
