"""Operator commands against a server: pause, unpause, kill, retry, skip, rerun; events."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from treadle.cli.client_cmds import OutputOpt, ServerOpt, request
from treadle.cli.common import console, emit, fail

_PLURAL = {"run": "runs", "job": "runs", "layer": "layers", "task": "tasks"}
_HELP = {
    "pause": "Pause a run, layer or task: nothing new starts until unpaused.",
    "unpause": "Undo a pause (also of something created paused).",
    "kill": "Stop a run, layer or task now, running processes included.",
    "retry": "Run a failed, killed or cancelled run, layer or task again.",
    "skip": "Mark a run, layer or task skipped: it counts as done for what follows.",
    "rerun": "Reset a run, layer or task and everything downstream, and run it again.",
}


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def control(op: str, kind: str, target: str, etag: str | None, server: str | None) -> Any:
    """Call ``POST /api/v1/{kind}s/{id}/{op}``; exit non-zero with the server's message."""
    plural = _PLURAL.get(kind.lower().rstrip("s"))
    if plural is None:
        fail(f"unknown kind {kind!r}: use run, layer or task")
    headers = {"X-Treadle-Actor": _actor()}
    if etag:
        headers["If-Match"] = etag
    return request(server, "POST", f"/api/v1/{plural}/{target}/{op}", headers=headers)


def _make(op: str) -> Callable[..., None]:
    def command(
        kind: str = typer.Argument(..., help="run | layer | task"),
        target: str = typer.Argument(..., metavar="ID"),
        etag: str | None = typer.Option(None, "--etag", help="Fail if it changed since (409)"),
        server: str | None = ServerOpt,
        output: str = OutputOpt,
    ) -> None:
        result = control(op, kind, target, etag, server)
        emit(
            result,
            output,
            lambda r: console.print(
                f"{op}: {r['kind']} {r['id']} (etag {r['etag']}, {r['affected']} affected)",
                highlight=False,
            ),
        )

    command.__doc__ = _HELP[op]
    return command


def _events_table(data: Any) -> None:
    table = Table()
    for column in ("at", "event", "actor", "detail"):
        table.add_column(column)
    for event in data["items"]:
        detail = ", ".join(f"{k}={v}" for k, v in (event.get("detail") or {}).items())
        table.add_row((event["at"] or "")[:23], event["kind"], event["actor"], detail[:80])
    console.print(table)


def register(app: typer.Typer) -> None:
    for op in _HELP:
        app.command(op)(_make(op))

    @app.command()
    def events(run_id: str, server: str | None = ServerOpt, output: str = OutputOpt) -> None:
        """Show a run's event history: who did what, when."""
        emit(request(server, "GET", f"/api/v1/runs/{run_id}/events"), output, _events_table)
