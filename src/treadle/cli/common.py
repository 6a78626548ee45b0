"""Shared CLI plumbing: settings from flags, errors as one line, output formats."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from treadle.errors import ConfigError, ServiceUnavailable, TreadleError

# Piped or redirected output is read by programs and logs: a message stays one line there
# instead of being wrapped at rich's default 80 columns.
console = Console(soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def fail(message: str, code: int = 1) -> NoReturn:
    # soft_wrap: one line however narrow the terminal (logs and tests read it as one).
    # Escaped: messages name extras like 'treadle[otel]', which are not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn treadle errors into one line and an exit code (2 for config/service problems)."""
    try:
        yield
    except (ConfigError, ServiceUnavailable) as exc:
        fail(exc.message, 2)
    except TreadleError as exc:
        fail(exc.message, 1)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr as text or one JSON object a line, with run/task/attempt ids attached."""
    from treadle.observability.logcontext import ContextFilter

    if fmt not in ("text", "json"):
        fail(f"bad log format {fmt!r}: use text or json", 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python warnings go through logging too, so a JSON log stays one object a line.
    logging.captureWarnings(True)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiormq logs every failed connect at ERROR with the same text our broker reports in one
    # line of its own (at start) or as a retry warning (later): keep one voice.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        from treadle.observability.logcontext import record_ids

        text = super().format(record)
        ids = record_ids(record)
        if not ids:
            return text
        tags = " ".join(f"{k.removesuffix('_id')}={v}" for k, v in ids.items())
        first, newline, rest = text.partition("\n")
        return f"{first} [{tags}]{newline}{rest}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from treadle.observability.logcontext import record_ids

        data: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_ids(record),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def emit(data: Any, output: str, table: Callable[[Any], None]) -> None:
    """Print ``data`` as a table (default), JSON or YAML."""
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        yaml.dump(data, sys.stdout)
    else:
        table(data)


def parse_inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs; values that parse as JSON keep their type."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"bad --input {pair!r}: use KEY=VALUE")
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result
