"""Entry point of the ``treadle`` command."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

from treadle import __version__
from treadle.cli import (
    client_cmds,
    control_cmds,
    maintenance,
    ops_cmds,
    run_cmd,
    runs_cmds,
    secret_cmds,
    serve,
    token_cmds,
)
from treadle.cli.common import fail, friendly_errors

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="treadle: a durable workflow engine."
)
definitions_app = typer.Typer(no_args_is_help=True, help="Stored definitions and files.")
app.add_typer(definitions_app, name="definitions")


@app.callback()
def _global(
    token: str | None = typer.Option(
        None, "--token", help="API token for client commands (TREADLE_TOKEN)", show_default=False
    ),
) -> None:
    """treadle: a durable workflow engine."""
    if token:
        os.environ["TREADLE_TOKEN"] = token  # the SDK and the client commands read it


serve.register(app)
maintenance.register(app)
run_cmd.register(app)
client_cmds.register(app, definitions_app)
runs_cmds.register(app)
ops_cmds.register(app, definitions_app)
control_cmds.register(app)
token_cmds.register(app)
secret_cmds.register(app)


@app.command()
def schema() -> None:
    """Print the JSON Schema of native definitions."""
    from treadle.model.definition import Definition

    print(json.dumps(Definition.model_json_schema(by_alias=True), indent=2))


@app.command()
def version() -> None:
    """Print treadle's version."""
    print(__version__)


@definitions_app.command("validate")
def definitions_validate(files: list[Path] = typer.Argument(...)) -> None:
    """Check definition files without a server."""
    from treadle.api.definitions_io import to_native
    from treadle.model.parse import definition_from_document, load_document

    bad = 0
    for file in files:
        if not file.is_file():
            print(f"{file}: no such file")
            bad += 1
            continue
        try:
            with friendly_errors():
                doc, dialect = to_native(load_document(file.read_text()), None)
                definition = definition_from_document(doc)
        except typer.Exit:
            bad += 1
            continue
        print(
            f"{file}: ok ({dialect}: {definition.name} v{definition.version}, "
            f"{len(definition.tasks)} tasks)"
        )
    if bad:
        fail(f"{bad} of {len(files)} files are invalid")


_DIALECT_CLIS = {
    "gin": ("treadle.compat.gin.cli", "gin_main"),
    "mender": ("treadle.compat.mender.cli", "mender_main"),
    "tork": ("treadle.compat.tork.cli", "tork_main"),
    "flower": ("treadle.compat.flower.cli", "flower_main"),
    "igor": ("treadle.compat.igor.cli", "igor_main"),
}


def _register_dialect_clis() -> None:
    """`treadle gin|mender|tork|flower|igor ...`: each dialect parses its engine's own flags."""
    import importlib.util

    for name, (module, function) in _DIALECT_CLIS.items():
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        app.command(
            name,
            help=f"Run treadle the way {name} is run (its own flags; -h for help).",
            context_settings={
                "allow_extra_args": True,
                "ignore_unknown_options": True,
                "help_option_names": [],
            },
        )(_dialect_command(module, function))


def _dialect_command(module: str, function: str) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        import importlib

        entry = getattr(importlib.import_module(module), function)
        raise typer.Exit(int(entry(list(ctx.args)) or 0))

    return command


_register_dialect_clis()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
