"""Errors the SDK raises: the server's ``{"error": {"code", "message", "details"}}`` as exceptions.

Every class derives from :class:`ApiError` and from the matching class of :mod:`treadle.errors`,
so ``except treadle.errors.NotFound`` works the same in-process and over HTTP::

    ApiError (TreadleError)
    ├── BadRequest            400 / 422 invalid_request (names the field)
    │   └── InvalidDefinition 422 invalid_definition, invalid_graph (also a DefinitionError)
    ├── Unauthorized          401
    ├── Forbidden             403
    ├── NotFoundError         404 (also treadle.errors.NotFound)
    ├── ConflictError         409 conflict: a stale etag (also treadle.errors.Conflict)
    ├── InvalidStateError     409 invalid_state (also treadle.errors.InvalidState)
    ├── TooLarge              413
    ├── ServerError           5xx
    │   └── Unavailable       503, or the server cannot be reached (also ServiceUnavailable)
    └── WaitTimeout           ``runs.wait`` gave up (also the builtin TimeoutError)
"""

from __future__ import annotations

from typing import Any

import httpx

from treadle.errors import (
    Conflict,
    DefinitionError,
    InvalidState,
    NotFound,
    ServiceUnavailable,
    TreadleError,
)


class ApiError(TreadleError):
    """An error answered by the treadle API (or the lack of an answer)."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        details: Any = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, details)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class BadRequest(ApiError):
    code = "invalid_request"
    status = 422


class InvalidDefinition(BadRequest, DefinitionError):
    code = "invalid_definition"
    status = 422


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


class Forbidden(ApiError):
    code = "forbidden"
    status = 403


class NotFoundError(ApiError, NotFound):
    code = "not_found"
    status = 404


class ConflictError(ApiError, Conflict):
    code = "conflict"
    status = 409


class InvalidStateError(ApiError, InvalidState):
    code = "invalid_state"
    status = 409


class TooLarge(ApiError):
    code = "too_large"
    status = 413


class ServerError(ApiError):
    code = "internal"
    status = 500


class Unavailable(ServerError, ServiceUnavailable):
    code = "service_unavailable"
    status = 503


class WaitTimeout(ApiError, TimeoutError):
    code = "wait_timeout"
    status = 408


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_definition": InvalidDefinition,
    "invalid_graph": InvalidDefinition,
    "invalid_state": InvalidStateError,
    "conflict": ConflictError,
    "not_found": NotFoundError,
    "service_unavailable": Unavailable,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFoundError,
    409: ConflictError,
    413: TooLarge,
    422: BadRequest,
    503: Unavailable,
}


def error_class(status: int, code: str | None) -> type[ApiError]:
    """The exception class for an HTTP status and the server's error code."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return BadRequest if 400 <= status < 500 else ApiError


def error_from_response(response: httpx.Response) -> ApiError:
    """Build the exception for a 4xx/5xx response (its body already read)."""
    code: str | None = None
    details: Any = None
    try:
        body = response.json()
        error = body["error"]
        message = str(error["message"])
        code = error.get("code")
        details = error.get("details")
    except (ValueError, KeyError, TypeError):
        message = response.text[:500] or response.reason_phrase or "error"
    cls = error_class(response.status_code, code)
    return cls(message, details, status=response.status_code, code=code)


def unreachable(url: str, exc: Exception) -> Unavailable:
    """The server could not be reached at all."""
    return Unavailable(f"cannot reach {url}: {exc}", status=503, code="unreachable")
