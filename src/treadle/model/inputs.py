"""Check run inputs against a definition's ``inputs`` schema and fill in defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from treadle.errors import DefinitionError

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _coerce(name: str, kind: str, value: Any) -> Any:
    if kind == "any" or value is None:
        return value
    if kind in ("integer", "number") and isinstance(value, bool):
        raise DefinitionError(
            f"input {name!r} must be a {kind}, got a boolean",
            details=[{"loc": ["inputs", name], "msg": f"expected {kind}"}],
        )
    if isinstance(value, _TYPES[kind]):
        return value
    if isinstance(value, str):
        try:
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
        except ValueError:
            pass
        if kind == "boolean" and value.lower() in {"true", "false"}:
            return value.lower() == "true"
    raise DefinitionError(
        f"input {name!r} must be a {kind}, got {type(value).__name__} {value!r}",
        details=[{"loc": ["inputs", name], "msg": f"expected {kind}"}],
    )


def resolve_inputs(
    schema: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated inputs with defaults; raises DefinitionError naming the offending input."""
    if not schema:
        return dict(given)
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise DefinitionError(
            f"unknown input {', '.join(map(repr, unknown))}; declared: {', '.join(schema)}",
            details=[{"loc": ["inputs", n], "msg": "not declared"} for n in unknown],
        )
    result: dict[str, Any] = {}
    missing = []
    for name, spec in schema.items():
        if name in given:
            value = _coerce(name, str(spec.get("type", "any")), given[name])
            allowed = spec.get("enum")
            if allowed and value not in allowed:
                raise DefinitionError(f"input {name!r} must be one of {allowed}, got {value!r}")
            result[name] = value
        elif spec.get("required") and spec.get("default") is None:
            missing.append(name)
        else:
            result[name] = spec.get("default")
    if missing:
        raise DefinitionError(
            f"missing required input {', '.join(map(repr, missing))}",
            details=[{"loc": ["inputs", n], "msg": "required"} for n in missing],
        )
    return result
