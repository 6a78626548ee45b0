"""Definition fields that start, limit and report on runs: concurrency, schedule, hooks, callbacks.

These are pure values validated with the rest of a native definition::

    concurrency: {limit: 2, key: "{{ inputs.customer }}"}
    schedule: {cron: "*/5 * * * *", timezone: Europe/Paris, inputs: {day: today},
               overlap: skip, catchup: none}
    hooks: [{name: deploy, secret_env: DEPLOY_HOOK_SECRET}]
    on_success: http://127.0.0.1:9000/done
    on_failure: {url: http://127.0.0.1:9000/alert, headers: {X-Team: ops}}
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HOOK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,199}$"

OverlapPolicy = Literal["skip", "queue", "allow"]
CatchupPolicy = Literal["none", "latest", "all"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def check_cron(value: str) -> str:
    """A five-field cron line, or six with seconds last (croniter's extension)."""
    text = " ".join(value.split())
    if not croniter.is_valid(text):
        raise ValueError(f"not a valid cron expression: {value!r}")
    return text


def check_timezone(value: str) -> str:
    """An IANA time zone name such as ``Europe/Paris`` or ``UTC``."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
    return value


class ConcurrencySpec(_Strict):
    """At most ``limit`` runs of the definition at once; with ``key``, at most ``limit`` per key.

    Runs over the limit wait in ``pending`` and start, oldest first, when a slot frees.
    """

    limit: int = Field(ge=1, le=100_000)
    key: str | None = Field(
        default=None,
        description="Template over inputs/run giving the group, e.g. '{{ inputs.customer }}'.",
    )


class ScheduleSpec(_Strict):
    """A cron schedule that starts runs; the time zone decides what '02:30' means."""

    cron: str
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    overlap: OverlapPolicy = Field(
        default="skip",
        description="When the previous scheduled run is still active: skip the tick, queue "
        "the new run until the previous one ends, or allow both.",
    )
    catchup: CatchupPolicy = Field(
        default="none",
        description="Ticks missed while no coordinator ran: none (only a tick late by less "
        "than `grace`), latest (the most recent one) or all.",
    )
    grace: float = Field(default=60.0, ge=0, description="Seconds a tick may be late.")
    paused: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)


class HookSpec(_Strict):
    """``POST /api/v1/hooks/{name}`` starts a run; the body is signed with the secret."""

    name: str = Field(pattern=HOOK_NAME_PATTERN)
    secret_env: str = Field(
        pattern=ENV_NAME_PATTERN,
        description="Environment variable (of the API process) holding the HMAC secret; "
        "secrets never sit in definitions.",
    )
    inputs_key: str | None = Field(
        default=None, description="Pass the body as this one input instead of as all inputs."
    )


class CallbackSpec(_Strict):
    """An HTTP endpoint POSTed the run summary when the run ends."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Sign the body like hooks are signed (X-Treadle-Signature).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


def as_callbacks(value: CallbackSpec | list[CallbackSpec] | None) -> list[CallbackSpec]:
    """Normalise the one-or-many form of ``on_success`` / ``on_failure``."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
