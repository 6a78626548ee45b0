"""The native ``container`` task kind: one main container, optional pre and post containers.

The same field set describes the main container (flat on the task, like every kind) and each
``pre``/``post`` step. The runtime validates the rendered spec with :class:`ContainerStep`, so the
rules below hold however a task reached it (native definition or a compat translation).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from treadle.model.definition import TaskBase

PullPolicy = Literal["never", "if-missing", "always"]

_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([bkmgt]i?b?)?$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Limits(_Frozen):
    """Resource limits enforced by the engine's cgroups."""

    cpus: float | None = Field(default=None, gt=0, le=1024, description="CPU cores, e.g. 0.5.")
    memory: str | None = Field(default=None, description='Memory ceiling, e.g. "256m" or "1g".')
    pids: int | None = Field(default=None, ge=1, description="Most processes at once.")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and not _MEMORY.match(value.strip()):
            raise ValueError(f"memory {value!r} is not a size such as '256m' or '1g'")
        return value.strip() if isinstance(value, str) else value


class Mount(_Frozen):
    """A bind mount (host path, allowed only under the worker's allow-list) or a tmpfs."""

    type: Literal["bind", "tmpfs"] = "bind"
    source: str | None = Field(default=None, description="Host path; required for bind.")
    target: str = Field(description="Absolute path inside the container.")
    readonly: bool = False

    @field_validator("target")
    @classmethod
    def _absolute_target(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"mount target {value!r} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _bind_needs_source(self) -> Mount:
        if self.type == "bind" and not (self.source and self.source.startswith("/")):
            raise ValueError("a bind mount needs an absolute `source` host path")
        return self


class RegistryAuth(_Frozen):
    """Credentials for pulling from a private registry (resolved from secrets by the caller)."""

    username: str = Field(description="A literal or `{{ secrets.NAME }}`.")
    password: str = Field(repr=False, description="Preferably `{{ secrets.NAME }}`.")


class _ContainerFields(BaseModel):
    """Fields shared by the main container and its pre/post steps."""

    image: str = Field(min_length=1, description="Image reference, e.g. 'alpine:3.18.3'.")
    cmd: list[str] | None = Field(default=None, description="Arguments (argv) for the image.")
    entrypoint: list[str] | str | None = None
    run: str | None = Field(default=None, description="A script run with the image's `sh -c`.")
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    mounts: list[Mount] = Field(default_factory=list)
    limits: Limits | None = None
    network: str | None = Field(
        default=None, description="Network mode; absent means the worker default, 'none'."
    )
    user: str | None = Field(default=None, description="user, uid or uid:gid.")
    pull: PullPolicy = Field(
        default="if-missing",
        description="When to pull `image`: if-missing (absent from the engine), always, never.",
    )
    registry: RegistryAuth | None = Field(
        default=None, description="Credentials for a private registry, used for the pull only."
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = [key for key in value if not isinstance(key, str) or not _ENV_NAME.match(key)]
            if bad:
                raise ValueError(f"invalid environment variable name(s): {bad}")
            # Numbers and booleans in YAML are common; the container only sees strings.
            return {k: v if isinstance(v, str) else _env_text(v) for k, v in value.items()}
        return value

    @field_validator("workdir")
    @classmethod
    def _absolute_workdir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"workdir {value!r} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _one_command(self) -> _ContainerFields:
        if self.run is not None and self.cmd is not None:
            raise ValueError("give either `cmd` or `run`, not both")
        if self.run is not None and not self.run.strip():
            raise ValueError("`run` must not be empty")
        return self


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ContainerStep(_Frozen, _ContainerFields):
    """A ``pre`` or ``post`` container of a container task (or the main one, as the runtime
    sees it)."""

    name: str | None = None


class ContainerTask(TaskBase, _ContainerFields):
    """``kind: container``: run an image, with run-scoped volumes shared by pre, main and post."""

    kind: Literal["container"]
    generic_steps: ClassVar[bool] = False
    volumes: list[str] = Field(
        default_factory=list,
        description="Container paths backed by volumes that live as long as this task and are "
        "shared by its pre, main and post containers.",
    )
    # Containers, not generic steps: the container runtime runs them itself so that they share
    # the task's volumes.
    pre: list[ContainerStep] = Field(default_factory=list)  # type: ignore[assignment]
    post: list[ContainerStep] = Field(default_factory=list)  # type: ignore[assignment]

    @field_validator("volumes")
    @classmethod
    def _absolute_volumes(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"volume path {path!r} must be an absolute container path")
        if len(set(value)) != len(value):
            raise ValueError("volume paths must be unique")
        return value
