"""``treadle run FILE``: run one definition in this process with live progress."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from treadle.cli.common import console, fail, friendly_errors, parse_inputs
from treadle.config import load_settings
from treadle.model.states import RunStatus, TaskStatus

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "cyan",
    "queued": "blue",
    "pending": "dim",
    "skipped": "yellow",
    "cancelled": "magenta",
    "paused": "yellow",
}


def _table(run: Any, tasks: list[Any]) -> Table:
    table = Table(
        title=f"{run.definition_name} v{run.definition_version}  run {run.id}  "
        f"[{STATUS_STYLE.get(run.status, '')}]{run.status}[/]"
    )
    for column in ("task", "kind", "status", "attempts", "seconds", "error"):
        table.add_column(column)
    for task in tasks:
        seconds = ""
        if task.started_at and task.finished_at:
            seconds = f"{(task.finished_at - task.started_at).total_seconds():.3f}"
        style = STATUS_STYLE.get(task.status, "")
        table.add_row(
            task.name,
            str(task.spec.get("kind")),
            f"[{style}]{task.status}[/]",
            str(task.attempt_count),
            seconds,
            (task.error or "")[:80],
        )
    return table


async def run_file(path: Path, inputs: dict[str, Any], db: str | None, imports: list[str]) -> bool:
    from treadle.api.definitions_io import to_native
    from treadle.engine.node import Node
    from treadle.model.parse import load_document

    doc, _ = to_native(load_document(path.read_text()), None)
    with tempfile.TemporaryDirectory(prefix="treadle-run-") as scratch:
        settings = load_settings(
            None,
            db=db or f"sqlite:///{scratch}/run.db",
            broker="memory://",
            imports=imports or None,
            heartbeat_seconds=2.0,
        )
        node = Node(settings, ("coordinator", "worker"))
        service = await node.start()
        try:
            run = await service.start_run(doc, inputs, actor="cli")
            interactive = sys.stdout.isatty()
            seen: dict[str, str] = {}
            with (
                Live(console=console, refresh_per_second=8, transient=False)
                if interactive
                else _NoLive() as live
            ):
                while True:
                    run = await service.get_run(run.id)
                    tasks = await service.get_tasks(run.id)
                    if interactive:
                        live.update(_table(run, tasks))
                    else:
                        for task in tasks:
                            if seen.get(task.id) != task.status:
                                seen[task.id] = task.status
                                print(
                                    f"{task.name}: {task.status}"
                                    + (
                                        f" ({task.error})"
                                        if task.error and task.status == TaskStatus.FAILED
                                        else ""
                                    ),
                                    flush=True,
                                )
                    if RunStatus(run.status).terminal:
                        break
                    await asyncio.sleep(0.1)
            if not interactive:
                console.print(_table(run, tasks))
            if run.error:
                console.print(f"[red]{run.error}[/]", highlight=False)
            return run.status == RunStatus.COMPLETED
        finally:
            await node.stop()


class _NoLive:
    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def update(self, *_: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        file: Path = typer.Argument(..., exists=False, help="Definition file (YAML or JSON)"),
        input: list[str] | None = typer.Option(None, "--input", "-i", help="KEY=VALUE"),
        db: str | None = typer.Option(None, "--db", help="Keep state in this SQLite file"),
        imports: list[str] | None = typer.Option(None, "--import", help="Handler module"),
    ) -> None:
        """Run one definition to completion in this process; exit 0 only if it completed."""
        if not file.is_file():
            fail(f"no such file: {file}", 2)
        with friendly_errors():
            ok = asyncio.run(run_file(file, parse_inputs(input), db, imports or []))
        raise typer.Exit(0 if ok else 1)
