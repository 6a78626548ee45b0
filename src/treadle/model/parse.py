"""Turn YAML or JSON text (or a parsed document) into a validated :class:`Definition`."""

from __future__ import annotations

import io
import json
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from treadle.errors import DefinitionError
from treadle.model.dag import validate_graph
from treadle.model.definition import Definition

MAX_DEPTH = 64


def load_document(text: str | bytes, content_type: str | None = None) -> Any:
    """Parse YAML or JSON text; errors name the line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DefinitionError(f"the document is not UTF-8 text: {exc}") from exc
    is_json = bool(content_type and "json" in content_type) or text.lstrip().startswith(("{", "["))
    if is_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if content_type and "json" in content_type:
                raise DefinitionError(
                    f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    details={"line": exc.lineno, "column": exc.colno},
                ) from exc
    yaml = YAML(typ="safe", pure=True)
    try:
        return yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise DefinitionError(
            f"malformed YAML at line {line}, column {column}: {problem}",
            details={"line": line, "column": column},
        ) from exc
    except YAMLError as exc:
        raise DefinitionError(f"malformed YAML: {exc}") from exc


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def format_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary plus per-field details of a pydantic error."""
    details = []
    parts = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc) or "(document)"
        details.append({"loc": loc, "msg": err["msg"], "type": err["type"]})
        parts.append(f"{where}: {err['msg']}")
    summary = "; ".join(parts[:5])
    if len(parts) > 5:
        summary += f"; and {len(parts) - 5} more"
    return summary, details


def definition_from_document(doc: Any) -> Definition:
    """Validate a parsed document as a native definition, graph included."""
    if not isinstance(doc, dict):
        raise DefinitionError("a definition must be a mapping with name and tasks")
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise DefinitionError(f"the definition is nested deeper than {MAX_DEPTH} levels")
    try:
        definition = Definition.model_validate(doc)
    except ValidationError as exc:
        summary, details = format_validation_error(exc)
        raise DefinitionError(f"invalid definition: {summary}", details=details) from exc
    names = [t.name for t in definition.tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(
            "duplicate task names: " + ", ".join(duplicates),
            details=[{"loc": ["tasks", n, "name"], "msg": "duplicate"} for n in duplicates],
        )
    validate_graph(definition.dependencies())
    return definition


def parse_definition(text: str | bytes, content_type: str | None = None) -> Definition:
    """Parse and validate YAML/JSON text as a native definition."""
    return definition_from_document(load_document(text, content_type))
