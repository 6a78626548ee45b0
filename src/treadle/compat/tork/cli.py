"""``treadle tork -mode standalone|coordinator|worker``: Tork's command line, treadle's roles.

Tork's flags are single-dash (``-mode``, ``-queue``); the double-dash forms work too, as with
Tork. The API listens on port 3000 by default, as Tork's did.

| Tork                                   | treadle                                         |
|----------------------------------------|-------------------------------------------------|
| ``-mode standalone``                   | api + coordinator + worker in one process       |
| ``-mode coordinator``                  | api + coordinator (Tork's coordinator serves it)|
| ``-mode worker``                       | worker                                          |
| ``-broker inmemory`` / ``rabbitmq``    | ``memory://`` / the ``-rabbitmq-url``           |
| ``-datastore inmemory`` / ``postgres`` | treadle's default store / ``-postgres-dsn``     |
| ``-queue NAME:N`` (repeatable)         | worker queues with their concurrency            |
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Registered here too, so a `-mode worker` process knows the no-container stand-in.
import treadle.compat.tork.handlers  # noqa: F401
from treadle.compat.launch import RoleOptions, launch
from treadle.config import parse_queue_specs
from treadle.errors import ConfigError, TreadleError

DEFAULT_PORT = 3000
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@localhost:5672/"
_ROLES = {
    "standalone": ("api", "coordinator", "worker"),
    "coordinator": ("api", "coordinator"),
    "worker": ("worker",),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadle tork",
        description="Run treadle with Tork's command-line flags.",
        allow_abbrev=False,
    )
    parser.add_argument("-mode", "--mode", required=True, choices=sorted(_ROLES))
    parser.add_argument("-broker", "--broker", default="inmemory", choices=["inmemory", "rabbitmq"])
    parser.add_argument("-rabbitmq-url", "--rabbitmq-url", default=DEFAULT_RABBITMQ_URL)
    parser.add_argument(
        "-datastore", "--datastore", default="inmemory", choices=["inmemory", "postgres"]
    )
    parser.add_argument("-postgres-dsn", "--postgres-dsn", default=None)
    parser.add_argument(
        "-queue", "--queue", action="append", default=[], metavar="NAME:CONCURRENCY"
    )
    parser.add_argument(
        "-address",
        "--address",
        default=None,
        metavar="HOST:PORT",
        help=f"where the API listens (default 127.0.0.1:{DEFAULT_PORT})",
    )
    parser.add_argument("-db", "--db", default=None, help="treadle store URL (overrides)")
    return parser


def dsn_to_url(dsn: str) -> str:
    """A libpq ``key=value`` DSN (Tork's form) as a ``postgresql://`` URL; URLs pass through."""
    if "://" in dsn:
        return dsn
    parts: dict[str, str] = {}
    for item in dsn.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bad postgres DSN item {item!r}: use key=value")
        parts[key] = value
    from urllib.parse import quote

    user = quote(parts.get("user", "postgres"), safe="")
    password = parts.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{parts.get('dbname', user)}"


def options_from_args(argv: Sequence[str]) -> RoleOptions:
    """Parse Tork's flags into the roles to run and their settings."""
    args = _parser().parse_args(list(argv))
    options = RoleOptions(roles=set(_ROLES[args.mode]))
    if args.broker == "rabbitmq":
        options.broker = args.rabbitmq_url
    if args.db:
        options.db = args.db
    elif args.datastore == "postgres":
        if not args.postgres_dsn:
            raise ConfigError("-datastore postgres needs -postgres-dsn")
        options.db = dsn_to_url(args.postgres_dsn)
    if args.queue:
        options.queues = parse_queue_specs(args.queue)
    options.host, options.port = "127.0.0.1", DEFAULT_PORT
    if args.address:
        text = str(args.address)
        head, sep, tail = text.rpartition(":")
        if not sep or not tail.isdigit():
            raise ConfigError(f"bad -address {text!r}: use HOST:PORT or :PORT")
        options.host, options.port = head or "0.0.0.0", int(tail)
    return options


def tork_main(argv: list[str]) -> int:
    """Entry point of ``treadle tork``; returns the exit status."""
    try:
        options = options_from_args(argv)
    except SystemExit as exc:  # argparse already printed the problem
        return int(exc.code or 0)
    except TreadleError as exc:
        print(f"treadle tork: {exc.message}", file=sys.stderr)
        return 2
    try:
        return launch(options)
    except SystemExit as exc:
        return int(exc.code or 0)
    except TreadleError as exc:
        print(f"treadle tork: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(tork_main(sys.argv[1:]))
