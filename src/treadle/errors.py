"""Errors raised by treadle.

Every error derives from :class:`TreadleError`, so callers can catch one root::

    TreadleError
    ├── DefinitionError      a definition does not parse or validate (names the field / line)
    │   └── GraphError       a cycle or an unknown dependency in the task graph
    ├── TemplateError        a template failed to render (names the expression)
    ├── NotFound             an unknown definition, run, task or worker
    ├── Conflict             a compare-and-set lost: the etag / version is stale
    ├── InvalidState         the operation is not allowed in the object's current state
    ├── ConfigError          bad settings, unknown URL scheme
    └── ServiceUnavailable   a store or broker cannot be reached
"""

from __future__ import annotations

from typing import Any


class TreadleError(Exception):
    """Root of every error treadle raises on purpose."""

    code = "error"
    status = 500

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class DefinitionError(TreadleError):
    code = "invalid_definition"
    status = 422


class GraphError(DefinitionError):
    code = "invalid_graph"


class TemplateError(TreadleError):
    code = "template_error"
    status = 422


class NotFound(TreadleError):
    code = "not_found"
    status = 404


class Conflict(TreadleError):
    code = "conflict"
    status = 409


class InvalidState(TreadleError):
    code = "invalid_state"
    status = 409


class ConfigError(TreadleError):
    code = "config_error"
    status = 500


class ServiceUnavailable(TreadleError):
    code = "service_unavailable"
    status = 503
