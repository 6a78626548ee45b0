"""``treadle mender``: Mender workflows' command line over treadle roles.

``treadle mender -config config.yaml server|worker [--automigrate]``. From Mender's config (and
its ``WORKFLOWS_*`` environment overrides) these keys map: ``listen`` (address of the API),
``workflows_path`` (folder of workflow files loaded at start), ``concurrency`` (worker slots) and
``nats_uri`` (the broker). treadle adds ``db`` (its store URL); MongoDB and SMTP keys have no
counterpart and are ignored.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from treadle.compat.launch import RoleOptions, launch
from treadle.errors import ConfigError

COMMANDS = {"server": {"api", "coordinator"}, "worker": {"worker"}}
KEYS = ("listen", "workflows_path", "concurrency", "nats_uri", "db")
ENV_PREFIX = "WORKFLOWS_"
DEFAULT_LISTEN = ":8080"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadle mender", description="Run Mender workflows' server or worker on treadle."
    )
    parser.add_argument("-config", "--config", default=None, help="Mender config.yaml")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument(
        "--automigrate", action="store_true", help="create or upgrade the store schema at start"
    )
    return parser


def env_key(key: str) -> str:
    """Mender's environment name of a config key (``nats_uri`` -> ``WORKFLOWS_NATS_URI``)."""
    return ENV_PREFIX + key.upper().replace("-", "_").replace(".", "_")


def read_config(path: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The mapped keys from the file, overridden by ``WORKFLOWS_*`` variables."""
    values: dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {path!r} not found")
        try:
            loaded = YAML(typ="safe", pure=True).load(io.StringIO(file.read_text()))
        except YAMLError as exc:
            raise ConfigError(f"config file {path!r} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path!r} must hold a mapping")
        values = {str(k).replace("-", "_").lower(): v for k, v in (loaded or {}).items()}
    for key in KEYS:
        if env_key(key) in environ:
            values[key] = environ[env_key(key)]
    return {k: values[k] for k in KEYS if values.get(k) not in (None, "")}


def split_listen(listen: str) -> tuple[str, int]:
    """``":8080"`` -> ("0.0.0.0", 8080); ``"127.0.0.1:9000"`` -> ("127.0.0.1", 9000)."""
    host, sep, port = str(listen).rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen must look like HOST:PORT or :PORT, not {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def options_from(argv: list[str], environ: Mapping[str, str]) -> RoleOptions:
    """The roles and settings for ``argv`` (argparse exits 2 on bad flags)."""
    args = build_parser().parse_args(argv)
    config = read_config(args.config, environ)
    host, port = split_listen(config.get("listen", DEFAULT_LISTEN))
    options = RoleOptions(
        roles=set(COMMANDS[args.command]),
        db=config.get("db"),
        broker=config.get("nats_uri"),
        host=host,
        port=port,
        definitions=[str(config["workflows_path"])] if "workflows_path" in config else [],
        automigrate=True if args.automigrate else None,
    )
    if "concurrency" in config:
        try:
            count = int(config["concurrency"])
        except (TypeError, ValueError) as exc:
            bad = config["concurrency"]
            raise ConfigError(f"concurrency must be a number, not {bad!r}") from exc
        if count < 1:
            raise ConfigError("concurrency must be at least 1")
        options.queues = {"default": count}
    return options


def mender_main(argv: list[str] | None = None) -> int:
    """Entry point of ``treadle mender``; returns the exit status."""
    try:
        options = options_from(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"treadle mender: {exc.message}", file=sys.stderr)
        return 2
    return launch(options)
