"""The start-a-run form: fields generated from a definition's ``inputs`` schema, and back.

Each input becomes one field whose widget follows its type: text, number, checkbox, a select
for an ``enum``, or a JSON text area for objects, arrays and untyped inputs. Parsing turns the
submitted strings back into typed values and collects one message per bad field; an empty
optional field is left out so the definition's default applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON_TYPES = ("object", "array", "any")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    widget: str  # text | integer | number | checkbox | select | json
    required: bool
    value: str  # what the widget shows
    checked: bool
    options: tuple[tuple[str, str], ...]  # (value sent, label) for selects
    description: str | None
    error: str | None = None

    @property
    def dom_id(self) -> str:
        return "in-" + "".join(c if c.isalnum() else "-" for c in self.name)


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind in JSON_TYPES or isinstance(value, dict | list):
        return value if isinstance(value, str) and kind != "any" else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_fields(
    schema: Mapping[str, Mapping[str, Any]],
    submitted: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[Field]:
    """Fields for ``schema``, showing ``submitted`` values (after a failed submit) or defaults."""
    fields = []
    for name, spec in schema.items():
        kind = str(spec.get("type") or "any")
        default = spec.get("default")
        enum = spec.get("enum")
        if enum:
            widget = "select"
        elif kind == "boolean":
            widget = "checkbox"
        elif kind in ("integer", "number"):
            widget = kind
        elif kind == "string":
            widget = "text"
        else:
            widget = "json"
        if submitted is not None:
            value = submitted.get(name, "")
            checked = name in submitted and submitted[name] not in ("", "false")
        else:
            value = _shown(kind, default)
            checked = default is True
        options: tuple[tuple[str, str], ...] = ()
        if enum:
            options = tuple((json.dumps(v), _shown("string", v)) for v in enum)
            if submitted is None and default is not None:
                value = json.dumps(default)
        fields.append(
            Field(
                name=name,
                type=kind,
                widget=widget,
                required=bool(spec.get("required")) and default is None,
                value=value,
                checked=checked,
                options=options,
                description=spec.get("description"),
                error=(errors or {}).get(name),
            )
        )
    return fields


def _convert(kind: str, widget: str, raw: str) -> Any:
    if widget == "select":
        return json.loads(raw)
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
    if kind == "string":
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        if kind == "any":
            return raw
        raise ValueError(f"must be JSON ({exc.msg} at column {exc.colno})") from None
    if kind == "object" and not isinstance(value, dict):
        raise ValueError('must be a JSON object, like {"key": "value"}')
    if kind == "array" and not isinstance(value, list):
        raise ValueError("must be a JSON array, like [1, 2]")
    return value


def parse_submission(
    schema: Mapping[str, Mapping[str, Any]], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed inputs from the form, and a message per field that could not be read."""
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in build_fields(schema, form):
        raw = form.get(field.name, "")
        if field.widget == "checkbox":
            inputs[field.name] = raw not in ("", "false")
            continue
        text = raw if field.widget == "text" else raw.strip()
        if text == "":
            if field.required:
                errors[field.name] = "is required"
            continue
        try:
            inputs[field.name] = _convert(field.type, field.widget, text)
        except ValueError as exc:
            errors[field.name] = str(exc)
    return inputs, errors
