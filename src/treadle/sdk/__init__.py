"""The Python SDK: :class:`Client`, :class:`AsyncClient`, typed results and API errors."""

from __future__ import annotations

from treadle.sdk.aclient import AsyncClient
from treadle.sdk.client import Client
from treadle.sdk.errors import (
    ApiError,
    BadRequest,
    ConflictError,
    Forbidden,
    InvalidDefinition,
    InvalidStateError,
    NotFoundError,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from treadle.sdk.models import (
    Attempt,
    Definition,
    DefinitionRef,
    Event,
    Page,
    Run,
    Schedule,
    Task,
    Worker,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "Client",
    "ConflictError",
    "Definition",
    "DefinitionRef",
    "Event",
    "Forbidden",
    "InvalidDefinition",
    "InvalidStateError",
    "NotFoundError",
    "Page",
    "Run",
    "Schedule",
    "ServerError",
    "Task",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
    "Worker",
]
