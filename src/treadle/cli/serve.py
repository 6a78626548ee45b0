"""``treadle standalone | api | coordinator | worker | migrate``: the long-running roles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import typer

from treadle.cli.common import configure_logging, err_console, fail, friendly_errors
from treadle.config import Settings, load_settings, parse_queue_specs
from treadle.errors import ConfigError

DbOpt = typer.Option(None, "--db", help="Store URL or SQLite path (TREADLE_DB)")
BrokerOpt = typer.Option(None, "--broker", help="Broker URL (TREADLE_BROKER)")
ConfigOpt = typer.Option(None, "--config", help="YAML/JSON settings file")
HostOpt = typer.Option(None, "--host", help="Listen address (default 127.0.0.1)")
PortOpt = typer.Option(None, "--port", help="Listen port (default 8765)")
DefsOpt = typer.Option(None, "--definitions", help="Folder of definitions to load at start")
ImportOpt = typer.Option(None, "--import", help="Module with @treadle.handler functions")
QueueOpt = typer.Option(None, "--queue", help="NAME:CONCURRENCY, repeatable")
AutomigrateOpt = typer.Option(
    None, "--automigrate/--no-automigrate", help="Create or upgrade the schema at start"
)
LogFormatOpt = typer.Option(None, "--log-format", help="text | json")
GraceOpt = typer.Option(
    None,
    "--grace",
    help="Seconds a stopping worker lets in-flight attempts finish before handing them back "
    "(TREADLE_GRACE_SECONDS, default 30)",
)
AuthOpt = typer.Option(
    None, "--auth", help="none | token: require API tokens (TREADLE_AUTH; docs/security.md)"
)
MetricsPortOpt = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port")


def build_settings(config: str | None, **flags: Any) -> Settings:
    queues = flags.pop("queue", None)
    if queues:
        flags["queues"] = parse_queue_specs(queues)
    db = flags.get("db")
    if db and "://" not in db:
        flags["db"] = f"sqlite:///{db}"
    with friendly_errors():
        return load_settings(config, **flags)


def say(settings: Settings, message: str, warning: bool = False) -> None:
    """A notice for the operator: a log record in JSON mode (one object a line), else rich."""
    if settings.log_format == "json":
        logging.getLogger("treadle.serve").log(
            logging.WARNING if warning else logging.INFO, message
        )
    elif warning:
        err_console.print(f"[bold yellow]WARNING:[/] {message}", highlight=False)
    else:
        err_console.print(message, highlight=False)


def serve_http(settings: Settings, roles: Sequence[str]) -> None:
    """Run uvicorn with the app for ``roles``; startup failures are one line and exit 2."""
    import uvicorn

    from treadle.api.app import create_app

    configure_logging(settings.log_level, settings.log_format)
    from treadle.api.auth import announce

    announce(settings)
    app = create_app(settings, roles)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    node = app.state.node

    async def main() -> None:
        # Connect the store and broker before uvicorn: a wrong URL or a service that does
        # not answer is one line and exit code 2, not a lifespan traceback.
        with friendly_errors():
            await node.start()
        await server.serve()

    try:
        asyncio.run(main())
    except ConfigError as exc:
        fail(exc.message, 2)
    if not server.started:
        fail("the server did not start (see the log above)", 2)


async def run_headless(settings: Settings, roles: Sequence[str]) -> None:
    """Coordinator / worker without HTTP: run until SIGTERM or SIGINT."""
    from treadle.engine.node import Node

    node = Node(settings, roles)
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    say(settings, f"treadle {' + '.join(roles)} running; Ctrl-C to stop")
    await stop.wait()
    await node.stop()


def register(app: typer.Typer) -> None:
    @app.command()
    def standalone(
        db: str | None = DbOpt,
        broker: str | None = BrokerOpt,
        host: str | None = HostOpt,
        port: int | None = PortOpt,
        definitions: list[str] | None = DefsOpt,
        imports: list[str] | None = ImportOpt,
        queue: list[str] | None = QueueOpt,
        automigrate: bool | None = AutomigrateOpt,
        log_format: str | None = LogFormatOpt,
        config: str | None = ConfigOpt,
        auth: str | None = AuthOpt,
    ) -> None:
        """Run api + coordinator + worker in one process (SQLite and in-process queue)."""
        settings = build_settings(
            config,
            db=db,
            broker=broker,
            host=host,
            port=port,
            definitions=definitions or None,
            imports=imports or None,
            queue=queue,
            automigrate=automigrate,
            log_format=log_format,
            auth=auth,
        )
        serve_http(settings, ("api", "coordinator", "worker"))

    @app.command()
    def api(
        db: str | None = DbOpt,
        broker: str | None = BrokerOpt,
        host: str | None = HostOpt,
        port: int | None = PortOpt,
        definitions: list[str] | None = DefsOpt,
        automigrate: bool | None = AutomigrateOpt,
        log_format: str | None = LogFormatOpt,
        config: str | None = ConfigOpt,
        auth: str | None = AuthOpt,
    ) -> None:
        """Serve the REST API (and UI) only."""
        settings = build_settings(
            config,
            db=db,
            broker=broker,
            host=host,
            port=port,
            definitions=definitions or None,
            automigrate=automigrate,
            log_format=log_format,
            auth=auth,
        )
        serve_http(settings, ("api",))

    @app.command()
    def coordinator(
        db: str | None = DbOpt,
        broker: str | None = BrokerOpt,
        automigrate: bool | None = AutomigrateOpt,
        log_format: str | None = LogFormatOpt,
        config: str | None = ConfigOpt,
    ) -> None:
        """Advance runs, fire timers, sweep expired leases."""
        settings = build_settings(
            config, db=db, broker=broker, automigrate=automigrate, log_format=log_format
        )
        configure_logging(settings.log_level, settings.log_format)
        with friendly_errors():
            asyncio.run(run_headless(settings, ("coordinator",)))

    @app.command()
    def worker(
        db: str | None = DbOpt,
        broker: str | None = BrokerOpt,
        queue: list[str] | None = QueueOpt,
        imports: list[str] | None = ImportOpt,
        grace: float | None = GraceOpt,
        automigrate: bool | None = AutomigrateOpt,
        log_format: str | None = LogFormatOpt,
        config: str | None = ConfigOpt,
        metrics_port: int | None = MetricsPortOpt,
    ) -> None:
        """Run attempts from the given queues (default: default:<cores>)."""
        settings = build_settings(
            config,
            db=db,
            broker=broker,
            queue=queue,
            imports=imports or None,
            grace_seconds=grace,
            automigrate=automigrate,
            log_format=log_format,
        )
        configure_logging(settings.log_level, settings.log_format)
        if metrics_port is not None:
            from treadle.observability.metrics import start_metrics_server

            start_metrics_server(metrics_port)
        with friendly_errors():
            asyncio.run(run_headless(settings, ("worker",)))

    @app.command()
    def migrate(db: str | None = DbOpt, config: str | None = ConfigOpt) -> None:
        """Create or upgrade the store's schema."""
        settings = build_settings(config, db=db)

        async def _go() -> str:
            from treadle.store.factory import connect_store

            store = await connect_store(settings.db, migrate=True)
            await store.close()
            return store.url  # the shown form: password masked

        with friendly_errors():
            shown = asyncio.run(_go())
        err_console.print(f"migrated {shown}", highlight=False, soft_wrap=True)
