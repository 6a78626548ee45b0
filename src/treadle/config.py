"""Settings: command-line flags > ``TREADLE_*`` environment variables > ``--config`` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from treadle.errors import ConfigError


def default_db() -> str:
    return "sqlite:///" + str(Path.cwd() / "treadle.db")


def parse_queue_specs(specs: list[str] | None) -> dict[str, int]:
    """``["io:4", "default"]`` -> ``{"io": 4, "default": <cores>}``."""
    queues: dict[str, int] = {}
    for spec in specs or []:
        name, _, count = spec.partition(":")
        if not name:
            raise ConfigError(f"bad queue {spec!r}: use NAME or NAME:CONCURRENCY")
        try:
            queues[name] = int(count) if count else (os.cpu_count() or 2)
        except ValueError as exc:
            raise ConfigError(f"bad queue {spec!r}: concurrency must be a number") from exc
        if queues[name] < 1:
            raise ConfigError(f"bad queue {spec!r}: concurrency must be at least 1")
    return queues


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class _Without(PydanticBaseSettingsSource):
    """Another source minus some keys (mapping settings that a higher source gives whole)."""

    def __init__(
        self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource, drop: set[str]
    ) -> None:
        super().__init__(settings_cls)
        self.inner = inner
        self.drop = drop

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.inner().items() if k not in self.drop}


class Settings(BaseSettings):
    """Every setting of every role; see docs/operations.md."""

    model_config = SettingsConfigDict(
        env_prefix="TREADLE_", env_nested_delimiter="__", extra="forbid"
    )

    db: str = Field(default_factory=default_db, description="Store URL")
    broker: str = Field(default="memory://", description="Broker URL")
    host: str = "127.0.0.1"
    port: int = 8765
    auth: Literal["none", "token"] = Field(
        default="none", description="none | token: bearer tokens with scopes (docs/security.md)"
    )
    definitions: list[str] = Field(default_factory=list, description="Folders loaded at start")
    imports: list[str] = Field(default_factory=list, description="Handler modules to import")
    queues: dict[str, int] = Field(default_factory=lambda: {"default": os.cpu_count() or 2})
    queue_rates: dict[str, float] = Field(
        default_factory=dict, description="Rate limits: tasks per second per queue"
    )
    automigrate: bool = True
    worker_advances_runs: bool = Field(
        default=True,
        description="A worker decides the next step of a run whose open tasks it just "
        "finished and claims it itself (off: every report goes through a coordinator)",
    )
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    grace_seconds: float = Field(
        default=30.0, ge=0, description="How long a stopping worker lets attempts finish"
    )
    delivery_limit: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    output_limit: int = Field(default=64 * 1024, ge=1024)
    flower_max_flows: int = Field(
        default=5, ge=0, description="Flower dialect: flows running at once (0: no limit)"
    )
    container_host: str | None = Field(default=None, description="Docker API URL (DOCKER_HOST)")
    container_bind_allow: list[str] = Field(
        default_factory=list, description="Host paths tasks may bind-mount"
    )
    container_network: str = Field(default="none", description="Default container network")
    container_result_limit: int = Field(default=64 * 1024, ge=1024)
    container_stop_grace: float = Field(default=2.0, ge=0)
    secret_key: str | None = Field(
        default=None,
        description="Fernet key(s) encrypting stored secrets, comma-separated: the first "
        "encrypts, all decrypt (rotation). Unset on a SQLite store: a key file next to it.",
        repr=False,
    )
    http_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks HTTP tasks may reach though refused by default (169.254.0.0/16)",
    )
    http_deny_private: bool = Field(
        default=False, description="HTTP tasks may not reach loopback or private addresses"
    )
    gc_threshold: list[int] = Field(
        default_factory=lambda: [50_000, 20, 100],
        description="The process's garbage collector thresholds (gc.set_threshold), set by a "
        "node while it runs; [] keeps Python's (700, 10, 10)",
    )
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text", description="text | json (one object a line, with run/task/attempt ids)"
    )
    tracing: Literal["none", "otlp", "console"] = Field(
        default="none", description="OpenTelemetry spans: none | otlp | console (OTEL_* apply)"
    )

    @field_validator("definitions", "imports", "http_allow_networks", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v for v in value.split(",") if v]
        return value

    @field_validator("gc_threshold")
    @classmethod
    def _gc_threshold(cls, value: list[int]) -> list[int]:
        if len(value) not in (0, 3) or any(v < 0 for v in value):
            raise ValueError("gc_threshold takes three counts >= 0, or [] for Python's own")
        return value

    @field_validator("http_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from treadle.runtime.http_guard import parse_networks

        parse_networks(value)  # a ValueError names the bad entry
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_values = _CONFIG_FILE_VALUES.get(id(settings_cls), {})
        drop = set(_FLAG_MAPPINGS.get(id(settings_cls), ()))
        return (
            init_settings,
            _Without(settings_cls, env_settings, drop),
            _FileSource(settings_cls, file_values),
        )


_CONFIG_FILE_VALUES: dict[int, dict[str, Any]] = {}
#: Settings holding a mapping: taken whole from one source, never merged across sources.
_MAPPINGS = ("queues",)
_FLAG_MAPPINGS: dict[int, set[str]] = {}


def load_settings(config_file: str | None = None, **flags: Any) -> Settings:
    """Build settings from flags (None = not given), the environment and a YAML/JSON file."""
    file_values: dict[str, Any] = {}
    if config_file:
        from treadle.model.parse import load_document

        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {config_file!r} not found")
        loaded = load_document(path.read_text())
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file!r} must hold a mapping")
        file_values = {k.replace("-", "_"): v for k, v in loaded.items()}
    # pydantic-settings deep-merges mappings across sources; a mapping setting (queues) must
    # come whole from the highest source that gives it, or `--queue a:1` would add to the file's.
    env_names = {k.upper() for k in os.environ}
    flag_mappings: set[str] = set()
    for name in _MAPPINGS:
        env_key = f"TREADLE_{name.upper()}"
        in_env = any(k == env_key or k.startswith(env_key + "__") for k in env_names)
        if flags.get(name) is not None:
            flag_mappings.add(name)
        if flags.get(name) is not None or in_env:
            file_values.pop(name, None)
    _CONFIG_FILE_VALUES[id(Settings)] = file_values
    _FLAG_MAPPINGS[id(Settings)] = flag_mappings
    try:
        from pydantic import ValidationError

        try:
            return Settings(**{k: v for k, v in flags.items() if v is not None})
        except ValidationError as exc:
            from treadle.model.parse import format_validation_error

            summary, _ = format_validation_error(exc)
            raise ConfigError(f"invalid settings: {summary}") from exc
    finally:
        _CONFIG_FILE_VALUES.pop(id(Settings), None)
        _FLAG_MAPPINGS.pop(id(Settings), None)
