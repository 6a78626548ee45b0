"""``treadle runs ls|get|logs|cancel|retry|replay``: runs on a server, through the SDK."""

from __future__ import annotations

import sys
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from treadle.cli.common import console, emit, fail, parse_inputs
from treadle.sdk import ApiError, Client, Run
from treadle.sdk.errors import Unavailable

ServerOpt = typer.Option(None, "--server", help="API URL (TREADLE_SERVER)")
OutputOpt = typer.Option("table", "--output", "-o", help="table | json | yaml")

runs_app = typer.Typer(no_args_is_help=True, help="Runs on a server: list, inspect, steer.")


@contextmanager
def sdk_client(server: str | None) -> Iterator[Client]:
    """A client whose errors end the command with the server's message (exit 2: unreachable)."""
    try:
        with Client(server) as client:
            yield client
    except Unavailable as exc:
        fail(exc.message, 2)
    except ApiError as exc:
        fail(f"{exc.status}: {exc.message}")


def check_output(output: str) -> None:
    if output not in ("table", "json", "yaml"):
        fail(f"unknown output format {output!r}: use table, json or yaml", 2)


def run_row(run: Run) -> list[str]:
    return [
        run.id,
        f"{run.definition} v{run.version}",
        run.status,
        run.created_at.isoformat(timespec="seconds") if run.created_at else "",
        "" if run.duration is None else f"{run.duration:.3f}",
        (run.error or "")[:60],
    ]


def runs_table(data: dict[str, Any]) -> None:
    table = Table()
    for column in ("id", "definition", "status", "created", "seconds", "error"):
        table.add_column(column)
    for item in data["items"]:
        table.add_row(*run_row(Run.from_json(item)))
    console.print(table)
    if data.get("next_cursor"):
        console.print(f"more: --cursor {data['next_cursor']}", highlight=False)


def run_table(run: Run) -> Table:
    table = Table(title=f"run {run.id}  {run.definition} v{run.version}  {run.status}")
    for column in ("task", "kind", "status", "attempts", "seconds", "error"):
        table.add_column(column)
    for task in run.tasks:
        table.add_row(
            task.name,
            str(task.kind),
            task.status,
            str(len(task.attempts)),
            "" if task.duration is None else f"{task.duration:.3f}",
            (task.error or "")[:70],
        )
    return table


def event_lines(previous: Run | None, current: Run) -> list[str]:
    """One line per change between two snapshots of a run (the non-TTY progress format)."""
    lines = []
    before = {t.name: t.status for t in previous.tasks} if previous else {}
    for task in current.tasks:
        if before.get(task.name) != task.status:
            error = f" ({task.error})" if task.error and task.status == "failed" else ""
            lines.append(f"task {task.name}: {task.status}{error}")
    if previous is None or previous.status != current.status:
        lines.append(f"run {current.id}: {current.status}")
    return lines


def watch(client: Client, run: Run) -> Run:
    """Follow a run to its end: a live table on a terminal, else one line per event."""
    if sys.stdout.isatty():
        with Live(run_table(run), console=console, refresh_per_second=8) as live:
            while not run.done:
                time.sleep(0.3)
                run = client.runs.get(run.id)
                live.update(run_table(run))
        return run
    previous: Run | None = None
    while True:
        for line in event_lines(previous, run):
            print(line, flush=True)
        if run.done:
            return run
        time.sleep(0.3)
        previous, run = run, client.runs.get(run.id)


def web_url(server: str, run_id: str) -> str:
    return f"{server}/ui/runs/{run_id}"


@runs_app.command("ls")
def runs_ls(
    status: str | None = typer.Option(None, "--status"),
    definition: str | None = typer.Option(None, "--definition"),
    limit: int = typer.Option(20, "--limit"),
    cursor: str | None = typer.Option(None, "--cursor"),
    server: str | None = ServerOpt,
    output: str = OutputOpt,
) -> None:
    """List runs, newest first."""
    check_output(output)
    with sdk_client(server) as client:
        page = client.runs.list(status=status, definition=definition, limit=limit, cursor=cursor)
    data = {"items": [dict(r.raw) for r in page.items], "next_cursor": page.next_cursor}
    emit(data, output, runs_table)


@runs_app.command("get")
def runs_get(
    run_id: str,
    watch_run: bool = typer.Option(False, "--watch", "-w", help="Follow until the run ends"),
    web: bool = typer.Option(False, "--web", help="Open the run in the browser"),
    server: str | None = ServerOpt,
    output: str = OutputOpt,
) -> None:
    """Show a run with its tasks (``--watch`` follows it; ``--web`` opens the UI)."""
    check_output(output)
    with sdk_client(server) as client:
        run = client.runs.get(run_id)
        if web:
            url = web_url(client.url, run.id)
            opened = webbrowser.open(url)
            console.print(url if opened else f"open {url}", highlight=False)
            return
        if watch_run:
            run = watch(client, run)
    emit(dict(run.raw), output, lambda _: console.print(run_table(run)))
    if watch_run and run.status != "completed":
        raise typer.Exit(1)


@runs_app.command("logs")
def runs_logs(
    run_id: str,
    task: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the task ends"),
    server: str | None = ServerOpt,
) -> None:
    """Print a task's log."""
    with sdk_client(server) as client:
        if follow:
            for chunk in client.runs.logs(run_id, task, follow=True):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:
            sys.stdout.write(client.runs.logs(run_id, task))


@runs_app.command("cancel")
def runs_cancel(run_id: str, server: str | None = ServerOpt, output: str = OutputOpt) -> None:
    """Cancel a run (running tasks are stopped)."""
    check_output(output)
    with sdk_client(server) as client:
        run = client.runs.cancel(run_id)
    emit(dict(run.raw), output, lambda _: console.print(run_table(run)))


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    from_failure: bool = typer.Option(
        False,
        "--from-failure",
        help="Rerun only the failed/cancelled tasks and what follows them, keeping the outputs "
        "of tasks that completed",
    ),
    server: str | None = ServerOpt,
) -> None:
    """Run a failed, killed or cancelled run again (in place)."""
    with sdk_client(server) as client:
        run = client.runs.get(run_id)
        if not from_failure:
            client.runs.retry(run)
            console.print(f"run {run.id}: retry requested", highlight=False)
            return
        failed = [t for t in run.tasks if t.status in ("failed", "cancelled")]
        if not failed:
            fail(f"run {run.id} has no failed or cancelled task")
        for task in failed:
            client.tasks.rerun(task)
            console.print(f"task {task.name}: rerun requested", highlight=False)


@runs_app.command("replay")
def runs_replay(
    run_id: str,
    input: list[str] | None = typer.Option(None, "--input", "-i", help="KEY=VALUE override"),
    watch_run: bool = typer.Option(False, "--watch", "-w"),
    server: str | None = ServerOpt,
) -> None:
    """Start a new run of the same definition version with the same inputs (or overrides)."""
    with sdk_client(server) as client:
        old = client.runs.get(run_id)
        if old.definition is None:
            fail(f"run {run_id} does not name its definition")
        inputs = {**old.inputs, **parse_inputs(input)}
        new = client.runs.create(old.definition, inputs, version=old.version)
        print(new.id, flush=True)
        if watch_run:
            new = watch(client, new)
            if new.status != "completed":
                raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
