"""``treadle prune``: delete finished runs (and their tasks, attempts, events, logs) in batches."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from treadle.cli.common import err_console, fail, friendly_errors
from treadle.cli.serve import ConfigOpt, DbOpt, build_settings
from treadle.model.durations import parse_duration


def _older_than(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        fail(f"bad --older-than {text!r}: {exc}", 2)
    return timedelta(seconds=seconds)


async def _prune(db: str, age: timedelta, batch: int) -> tuple[int, str]:
    from treadle.store.factory import connect_store

    store = await connect_store(db)  # before the progress display: a failure is one line
    try:
        cutoff = await store.now() - age
        shown = f"{cutoff:%Y-%m-%d %H:%M:%S}Z"
        with _progress() as progress:
            job = progress.add_task(f"pruning runs finished before {shown}")

            def advance(count: int) -> None:
                progress.update(job, advance=count)

            total = await store.prune_runs(cutoff, batch=batch, on_batch=advance)
        return total, shown
    finally:
        await store.close()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.completed} runs deleted"),
        TimeElapsedColumn(),
        console=err_console,
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def prune(
        older_than: str = typer.Option(
            ..., "--older-than", help="Age of finished runs to delete: 30d, 12h, 90m, 3600 (0: all)"
        ),
        batch: int = typer.Option(500, "--batch", min=1, help="Runs deleted per transaction"),
        db: str | None = DbOpt,
        config: str | None = ConfigOpt,
    ) -> None:
        """Delete finished runs older than --older-than with their tasks, attempts and logs.

        Runs that are pending, running or paused are never touched. Age is measured from
        when a run finished, by the store's clock.
        """
        age = _older_than(older_than)
        settings = build_settings(config, db=db)
        with friendly_errors():
            total, cutoff = asyncio.run(_prune(settings.db, age, batch))
        err_console.print(f"pruned {total} runs finished before {cutoff}", soft_wrap=True)
        print(total)
