"""The Store contract for API tokens: SQLite, PostgreSQL and Redis behave alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.contract.store_records import new_id
from treadle.errors import Conflict, NotFound
from treadle.store.base import Store
from treadle.store.token_records import TokenRecord
from treadle.tokens import Scope, issue_token, revoke_token, verify_token


def make_token(name: str, prefix: str, now: object, scope: str = "read") -> TokenRecord:
    return TokenRecord(
        id=new_id(),
        name=name,
        scope=scope,
        prefix=prefix,
        hash="ab" * 32,
        created_at=now,  # type: ignore[arg-type]
    )


async def test_put_list_and_find_by_prefix(store: Store) -> None:
    now = await store.now()
    first = await store.put_token(make_token("zeta", "trd_aaaaaaaa", now, "admin"))
    second = await store.put_token(make_token("alpha", "trd_bbbbbbbb", now))
    listed = await store.list_tokens()
    assert [t.name for t in listed] == ["alpha", "zeta"]
    assert listed[1] == first
    assert listed[1].created_at == now and listed[1].last_used_at is None
    assert await store.tokens_by_prefix("trd_bbbbbbbb") == [second]
    assert await store.tokens_by_prefix("trd_cccccccc") == []


async def test_names_are_unique(store: Store) -> None:
    now = await store.now()
    await store.put_token(make_token("ci", "trd_aaaaaaaa", now))
    with pytest.raises(Conflict, match="'ci'"):
        await store.put_token(make_token("ci", "trd_bbbbbbbb", now, "admin"))
    assert [(t.name, t.scope) for t in await store.list_tokens()] == [("ci", "read")]
    assert await store.tokens_by_prefix("trd_bbbbbbbb") == []


async def test_delete_by_name_or_id(store: Store) -> None:
    now = await store.now()
    by_name = await store.put_token(make_token("one", "trd_aaaaaaaa", now))
    by_id = await store.put_token(make_token("two", "trd_bbbbbbbb", now))
    assert await store.delete_token("one") == by_name
    assert await store.delete_token(by_id.id) == by_id
    assert await store.list_tokens() == []
    assert await store.tokens_by_prefix("trd_aaaaaaaa") == []
    with pytest.raises(NotFound, match="'one'"):
        await store.delete_token("one")
    # the name is free again
    await store.put_token(make_token("one", "trd_cccccccc", now))


async def test_touch_records_last_use_and_ignores_gone_tokens(store: Store) -> None:
    now = await store.now()
    token = await store.put_token(make_token("used", "trd_aaaaaaaa", now))
    later = now + timedelta(seconds=90)
    await store.touch_token(token.id, later)
    assert await store.tokens_by_prefix("trd_aaaaaaaa") == [replace(token, last_used_at=later)]
    await store.delete_token("used")
    await store.touch_token(token.id, later)  # no error, and nothing comes back
    assert await store.list_tokens() == []


async def test_issue_verify_revoke(store: Store) -> None:
    now = await store.now()
    raw, record = await issue_token(store, "deploy", Scope.OPERATE, now)
    assert raw.startswith("trd_") and len(raw) > 40
    assert record.prefix == raw[: len(record.prefix)] and raw not in record.hash
    found = await verify_token(store, raw, now)
    assert found is not None and found.name == "deploy" and found.scope == "operate"
    assert (await store.list_tokens())[0].last_used_at == now
    for wrong in ("", "garbage", raw[:-1] + ("A" if raw[-1] != "A" else "B"), raw + "x"):
        assert await verify_token(store, wrong, now) is None, wrong
    await revoke_token(store, "deploy")
    assert await verify_token(store, raw, now) is None
