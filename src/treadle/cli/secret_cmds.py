"""``treadle secret set|list|rm|keygen``: manage secrets through the API (values go one way)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from treadle.cli.client_cmds import OutputOpt, ServerOpt, request
from treadle.cli.common import console, emit

secret_app = typer.Typer(no_args_is_help=True, help="Encrypted secrets for {{ secrets.NAME }}.")


def _read_value(value: str | None) -> str:
    if value is not None:
        return value
    if sys.stdin.isatty():
        return str(typer.prompt("value", hide_input=True, confirmation_prompt=True))
    text = sys.stdin.read()
    # `echo value | treadle secret set X` should store "value", not "value\n".
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _path(name: str) -> str:
    return "/api/v1/secrets/" + quote(name, safe="")


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(..., help="Secret name (letters, digits, _ . -)"),
    value: str | None = typer.Option(
        None,
        "--value",
        help="The value (shows up in shell history and `ps`; prefer stdin or the prompt)",
    ),
    server: str | None = ServerOpt,
) -> None:
    """Create or replace a secret; the value comes from stdin, or a hidden prompt."""
    secret = _read_value(value)
    data = request(server, "PUT", _path(name), json={"value": secret})
    console.print(f"secret {data['name']} set", highlight=False)


@secret_app.command("list")
def secret_list(server: str | None = ServerOpt, output: str = OutputOpt) -> None:
    """List secret names (values are never shown)."""

    def table(data: Any) -> None:
        out = Table()
        for column in ("name", "updated"):
            out.add_column(column)
        for item in data["items"]:
            out.add_row(item["name"], (item["updated_at"] or "")[:19])
        console.print(out)

    emit(request(server, "GET", "/api/v1/secrets"), output, table)


@secret_app.command("rm")
def secret_rm(name: str, server: str | None = ServerOpt) -> None:
    """Delete a secret."""
    request(server, "DELETE", _path(name))
    console.print(f"secret {name} deleted", highlight=False)


@secret_app.command("keygen")
def secret_keygen() -> None:
    """Print a new key for TREADLE_SECRET_KEY."""
    from treadle.secrets.vault import generate_key

    print(generate_key())


def register(app: typer.Typer) -> None:
    app.add_typer(secret_app, name="secret")
