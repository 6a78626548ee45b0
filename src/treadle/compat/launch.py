"""The one place where dialect CLIs (``treadle gin``, ``treadle mender``) start treadle roles.

The dialect parsers turn their engine's flags and config into :class:`RoleOptions`; this module
hands them to ``treadle.cli.roles.run_roles`` when it exists, and otherwise to the ``serve``
helpers that ``treadle standalone`` uses.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

ROLE_ORDER = ("api", "coordinator", "worker")


@dataclass(slots=True)
class RoleOptions:
    """What a dialect CLI asks for; ``None`` leaves treadle's own default (flags > env > file)."""

    roles: set[str]
    db: str | None = None
    broker: str | None = None
    host: str | None = None
    port: int | None = None
    definitions: list[str] = field(default_factory=list)
    queues: dict[str, int] = field(default_factory=dict)
    automigrate: bool | None = None
    imports: list[str] = field(default_factory=list)

    def flags(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "broker": self.broker,
            "host": self.host,
            "port": self.port,
            "definitions": self.definitions or None,
            "queue": [f"{name}:{count}" for name, count in self.queues.items()] or None,
            "automigrate": self.automigrate,
            "imports": self.imports or None,
        }


def launch(options: RoleOptions) -> int:
    """Run the roles until stopped; the exit status."""
    roles = [r for r in ROLE_ORDER if r in options.roles]
    try:
        from treadle.cli.roles import run_roles  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _launch_with_serve(roles, options)
    result = run_roles(set(roles), **options.flags())
    return int(result or 0)


def _launch_with_serve(roles: list[str], options: RoleOptions) -> int:
    import typer

    from treadle.cli import serve

    try:
        settings = serve.build_settings(None, **options.flags())
        if "api" in roles:
            serve.serve_http(settings, roles)
        else:
            asyncio.run(serve.run_headless(settings, roles))
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
