"""Typed handler inputs: a handler's annotations validate its ``args`` with pydantic.

``def resize(image: Image, width: int = 100)`` with ``Image`` a pydantic model receives an
``Image`` instance and an ``int``; arguments that do not fit fail the task (not retried) with
a message naming every bad field.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from treadle.runtime.base import TaskFailed


@lru_cache(maxsize=512)
def _model_for(func: Callable[..., Any]) -> tuple[type[BaseModel], tuple[str, ...]] | None:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an annotation that cannot be resolved: leave the call unchecked
        return None
    fields: dict[str, Any] = {}
    open_kwargs = False
    for param in inspect.signature(func).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            open_kwargs = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    if not any(p in hints for p in fields):
        return None
    config = ConfigDict(extra="allow" if open_kwargs else "forbid", arbitrary_types_allowed=True)
    model = create_model(f"{func.__name__}_arguments", __config__=config, **fields)
    return model, tuple(fields)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "arguments"
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unexpected argument"
        elif error.get("type") != "missing" and "input" in error:
            message += f" (got {error['input']!r})"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def validate_args(func: Callable[..., Any], name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and convert ``args`` for ``func``; raise :class:`TaskFailed` if they do not fit."""
    found = _model_for(func)
    if found is None:
        return dict(args)
    model, names = found
    try:
        validated = model.model_validate(dict(args))
    except ValidationError as exc:
        raise TaskFailed(
            f"handler {name!r} got invalid arguments: {_describe(exc)}",
            error_type="InvalidArguments",
            retryable=False,
        ) from exc
    # Only what was given: the function applies its own defaults to the rest.
    values = {n: getattr(validated, n) for n in names if n in args}
    values.update(validated.model_extra or {})
    return values
