"""``treadle definitions render|graph``, ``config show|validate``, ``health`` and ``deploy``."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

from treadle.cli.common import console, emit, fail, friendly_errors, parse_inputs
from treadle.cli.runs_cmds import check_output, sdk_client

ServerOpt = typer.Option(None, "--server", help="API URL (TREADLE_SERVER)")
config_app = typer.Typer(no_args_is_help=True, help="Settings: show what applies, check a file.")


def _load_definition(file: Path) -> Any:
    from treadle.api.definitions_io import to_native
    from treadle.model.parse import definition_from_document, load_document

    if not file.is_file():
        fail(f"no such file: {file}", 2)
    with friendly_errors():
        doc, _ = to_native(load_document(file.read_text()), None)
        return definition_from_document(doc)


def _mask(url: str) -> str:
    """Hide the password of a URL (``scheme://user:secret@host`` -> ``user:***``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def load_object(target: str) -> Any:
    """``module:attr`` (or ``module`` alone: every workflow in it)."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"cannot import {module_name!r}: {exc}", 2)
    if not attr:
        from treadle.workflows import Workflow

        found = [v for v in vars(module).values() if isinstance(v, Workflow)]
        if not found:
            fail(f"module {module_name!r} defines no @treadle.workflow", 2)
        return found
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            fail(f"{module_name!r} has no attribute {attr!r}", 2)
        obj = getattr(obj, part)
    return [obj]


def definitions_render(
    file: Path,
    input: list[str] | None = typer.Option(None, "--input", "-i", help="KEY=VALUE"),
    output: str = typer.Option("yaml", "--output", "-o", help="yaml | json"),
) -> None:
    """Show a definition with templates expanded for the given inputs."""
    from treadle.cli.graph import render_definition

    definition = _load_definition(file)
    with friendly_errors():
        rendered = render_definition(definition, parse_inputs(input))
    emit(rendered, "json" if output == "json" else "yaml", lambda _: None)


def definitions_graph(
    file: Path,
    fmt: str = typer.Option("text", "--format", "-f", help="text | svg | dot"),
    out: Path | None = typer.Option(None, "--out", help="Write to this file"),
) -> None:
    """Print the task graph as text, SVG or Graphviz dot."""
    from treadle.cli.graph import graph_dot, graph_svg, graph_text

    makers = {"text": graph_text, "svg": graph_svg, "dot": graph_dot}
    if fmt not in makers:
        fail(f"unknown format {fmt!r}: use text, svg or dot", 2)
    text = makers[fmt](_load_definition(file))
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}", highlight=False)


def config_show(
    config: str | None = typer.Option(None, "--config", help="YAML/JSON settings file"),
    output: str = typer.Option("yaml", "--output", "-o", help="yaml | json | table"),
) -> None:
    """Print the settings in effect (flags > TREADLE_* env > file), passwords masked."""
    from treadle.config import load_settings

    check_output(output)
    with friendly_errors():
        settings = load_settings(config)
    data = settings.model_dump(mode="json")
    for key in ("db", "broker"):
        data[key] = _mask(str(data[key]))
    if data.get("secret_key"):
        data["secret_key"] = "***"  # the key that decrypts every stored secret

    def table(values: dict[str, Any]) -> None:
        for key, value in values.items():
            console.print(f"{key}: {json.dumps(value)}", highlight=False)

    emit(data, output, table)


def config_validate(file: Path) -> None:
    """Check a settings file (unknown keys and bad values are named)."""
    from treadle.config import load_settings

    with friendly_errors():
        load_settings(str(file))
    console.print(f"{file}: ok", highlight=False)


def health(server: str | None = ServerOpt, output: str = typer.Option("table", "-o")) -> None:
    """Ask a server whether it is up and ready; exit 1 when it is not ready."""
    check_output(output)
    from treadle.sdk import Unavailable

    with sdk_client(server) as client:
        up = client.health()
        try:
            ready: dict[str, Any] = client.ready()
        except Unavailable as exc:
            ready = {"status": "not ready", "detail": exc.message}
    data = {"server": client.url, "version": up.get("version"), **ready}
    emit(
        data,
        output,
        lambda d: console.print(
            f"{d['server']}: {d['status']} (treadle {d['version']})", highlight=False
        ),
    )
    if ready.get("status") != "ready":
        raise typer.Exit(1)


def deploy(
    target: str = typer.Argument(..., help="module:workflow, or a module (all its workflows)"),
    server: str | None = ServerOpt,
) -> None:
    """Store code-first workflows (``@treadle.workflow``) on a server."""
    objects = load_object(target)
    with sdk_client(server) as client:
        for obj in objects:
            if not callable(getattr(obj, "to_document", None)) and not isinstance(obj, dict):
                fail(f"{target} is not a @treadle.workflow or a definition mapping", 2)
            with friendly_errors():
                ref = client.definitions.create(obj)
            console.print(f"deployed {ref.name} v{ref.version}", highlight=False)


def register(app: typer.Typer, definitions_app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    definitions_app.command("render")(definitions_render)
    definitions_app.command("graph")(definitions_graph)
    config_app.command("show")(config_show)
    config_app.command("validate")(config_validate)
    app.command()(health)
    app.command()(deploy)
    # `treadle prune` lives in treadle.cli.maintenance (batches and a progress display).
