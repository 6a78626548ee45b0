"""``treadle gin``: gin's command line (single-dash Go flags) over treadle roles.

``-mode master`` runs the coordinator, ``-mode job`` a worker and ``-mode api`` the HTTP API
(gin's ``/wf/`` routes included), on RabbitMQ (``-amqp``) with the store at ``-redis``. The Redis
URL is also where workflows that gin stored (``workflow.<Name>``) are looked up. ``-import``
names modules of ``@treadle.handler`` functions: the step types gin's JobManager registered.
"""

from __future__ import annotations

import argparse
import sys

from treadle.compat.gin import redis_source
from treadle.compat.launch import RoleOptions, launch

MODES = {"master": {"coordinator"}, "job": {"worker"}, "api": {"api"}}
DEFAULT_AMQP = "amqp://guest:guest@localhost:5672/"
DEFAULT_REDIS = "redis://localhost:6379/0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadle gin", description="Run a gin node (master, job or api) on treadle."
    )
    # Go's flag package accepts -flag and --flag alike; so do we.
    parser.add_argument("-mode", "--mode", default="job", choices=sorted(MODES))
    parser.add_argument("-amqp", "--amqp", default=DEFAULT_AMQP, help="RabbitMQ URL")
    parser.add_argument("-redis", "--redis", default=DEFAULT_REDIS, help="Redis URL")
    parser.add_argument("-host", "--host", default="0.0.0.0", help="API listen address")
    parser.add_argument("-port", "--port", type=int, default=8080, help="API listen port")
    parser.add_argument(
        "-db", "--db", default=None, help="treadle store URL (default: the -redis URL)"
    )
    parser.add_argument(
        "-definitions",
        "--definitions",
        action="append",
        default=[],
        help="folder of workflow files to load at start (repeatable)",
    )
    parser.add_argument(
        "-import",
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module with @treadle.handler step types, for job nodes (repeatable)",
    )
    return parser


def options_from(argv: list[str]) -> tuple[RoleOptions, str]:
    """gin's flags as the roles and connections to run, plus the Redis URL (exits 2 on bad
    flags)."""
    args = build_parser().parse_args(argv)
    options = RoleOptions(
        roles=set(MODES[args.mode]),
        db=args.db or args.redis,
        broker=args.amqp,
        host=args.host,
        port=args.port,
        definitions=list(args.definitions),
        imports=list(args.imports),
    )
    return options, args.redis


def gin_main(argv: list[str] | None = None) -> int:
    """Entry point of ``treadle gin``; returns the exit status."""
    options, redis_url = options_from(sys.argv[1:] if argv is None else argv)
    redis_source.configure(redis_url)
    return launch(options)
