"""``treadle token create | list | revoke``: API tokens, straight on the store (``--db``).

They talk to the store rather than a server so the first (admin) token can be made before
any exists; a running server sees new and revoked tokens at once (it asks the store).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.table import Table

from treadle.cli.common import console, emit, err_console, fail, friendly_errors
from treadle.cli.serve import ConfigOpt, DbOpt, build_settings
from treadle.store.base import Store
from treadle.tokens.scopes import parse_scope
from treadle.tokens.service import issue_token, revoke_token

T = TypeVar("T")

token_app = typer.Typer(no_args_is_help=True, help="API tokens (for --auth token).")
ScopeOpt = typer.Option(
    "read", "--scope", help="read < submit < operate < admin (each includes the ones before)"
)
OutputOpt = typer.Option("table", "--output", "-o", help="table | json | yaml")


def _on_store(db: str | None, config: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    settings = build_settings(config, db=db)

    async def go() -> T:
        from treadle.store.factory import connect_store

        store = await connect_store(settings.db, migrate=settings.automigrate)
        try:
            return await work(store)
        finally:
            await store.close()

    with friendly_errors():
        return asyncio.run(go())


@token_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A name to list and revoke it by"),
    scope: str = ScopeOpt,
    db: str | None = DbOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Make a token and print it (only this once: the store keeps just its hash)."""
    try:
        wanted = parse_scope(scope)
    except ValueError as exc:
        fail(str(exc), 2)

    async def work(store: Store) -> tuple[str, Any]:
        return await issue_token(store, name, wanted, await store.now())

    raw, record = _on_store(db, config, work)
    err_console.print(
        f"created token {record.name!r} (scope {record.scope}, starts {record.prefix}); "
        "it is shown only now, keep it somewhere safe",
        highlight=False,
        soft_wrap=True,
    )
    print(raw)


@token_app.command("list")
def list_(db: str | None = DbOpt, config: str | None = ConfigOpt, output: str = OutputOpt) -> None:
    """List tokens: name, id, scope, prefix, when made and last used (never the token)."""
    from treadle.api.v1.tokens import token_view

    async def work(store: Store) -> list[dict[str, Any]]:
        return [token_view(t) for t in await store.list_tokens()]

    def table(rows: list[dict[str, Any]]) -> None:
        grid = Table()
        for column in ("name", "id", "scope", "prefix", "created", "last used"):
            grid.add_column(column)
        for row in rows:
            grid.add_row(
                row["name"],
                row["id"],
                row["scope"],
                row["prefix"] + "…",
                (row["created_at"] or "")[:19],
                (row["last_used_at"] or "never")[:19],
            )
        console.print(grid)

    emit(_on_store(db, config, work), output, table)


@token_app.command("revoke")
def revoke(
    name_or_id: str = typer.Argument(..., metavar="NAME|ID"),
    db: str | None = DbOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Delete a token; requests carrying it are refused from now on."""

    async def work(store: Store) -> Any:
        return await revoke_token(store, name_or_id)

    record = _on_store(db, config, work)
    err_console.print(f"revoked token {record.name!r} ({record.id})", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
