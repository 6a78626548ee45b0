"""Turn YAML or JSON text (or a parsed document) into a validated :class:`Definition`."""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from treadle.errors import DefinitionError
from treadle.model.dag import validate_graph
from treadle.model.definition import Definition

MAX_DEPTH = 64
#: Values in a document once YAML aliases are expanded (a "billion laughs" bomb has billions).
MAX_NODES = 200_000
#: Tasks in one definition (a fan-out's items are not counted: they are expanded at run time).
MAX_TASKS = 1_000
#: Open brackets a document may nest before it is parsed at all (the parsers recurse).
MAX_SCAN_DEPTH = 500


def bracket_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, quotes ignored: an upper bound that lets
    a parser refuse 10,000 nested arrays before it recurses into them."""
    if text.count("[") + text.count("{") <= MAX_SCAN_DEPTH:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def load_document(text: str | bytes, content_type: str | None = None) -> Any:
    """Parse YAML or JSON text; errors name the line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DefinitionError(f"the document is not UTF-8 text: {exc}") from exc
    if bracket_depth(text) > MAX_SCAN_DEPTH:
        raise DefinitionError(f"the document is nested deeper than {MAX_DEPTH} levels")
    is_json = bool(content_type and "json" in content_type) or text.lstrip().startswith(("{", "["))
    if is_json:
        try:
            return json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            if content_type and "json" in content_type:
                raise DefinitionError(
                    f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    details={"line": exc.lineno, "column": exc.colno},
                ) from exc
        except RecursionError as exc:
            raise DefinitionError(f"the document is nested deeper than {MAX_DEPTH} levels") from exc
        except ValueError as exc:  # NaN / Infinity, or an integer of over 4300 digits
            raise DefinitionError(f"malformed JSON: {exc}") from exc
    yaml = YAML(typ="safe", pure=True)
    try:
        loaded = yaml.load(io.StringIO(text))
    except RecursionError as exc:
        raise DefinitionError("the YAML document is nested too deeply") from exc
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
    size = expanded_size(loaded, MAX_NODES)
    if size > MAX_NODES:
        raise DefinitionError(
            f"the YAML document expands to more than {MAX_NODES} values "
            "(aliases repeat what they point at); write it out or make it smaller"
        )
    return loaded


def expanded_size(value: Any, limit: int) -> int:
    """How many values ``value`` holds with shared (aliased) parts counted each time they
    appear; stops counting past ``limit``. Linear in the distinct containers, so a bomb of
    aliases is measured without being expanded."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    # Post-order walk without recursion: a container's size once all its children are known.
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, ready = stack.pop()
        if not isinstance(item, dict | list) or id(item) in sizes:
            continue
        children = list(item.values()) if isinstance(item, dict) else item
        if not ready:
            if id(item) in visiting:  # an alias to its own ancestor: endless once expanded
                return limit + 1
            visiting.add(id(item))
            stack.append((item, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list))
            continue
        total = 1
        for child in children:
            total += sizes.get(id(child), 1) if isinstance(child, dict | list) else 1
            if total > limit:
                break
        sizes[id(item)] = min(total, limit + 1)
        visiting.discard(id(item))
    return sizes.get(id(value), 1)


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


def _non_finite(value: Any) -> str | None:
    """The path of a NaN or infinite number in ``value`` (YAML's ``.nan``, ``.inf``), if any."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where or "(document)"
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


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
    tasks = doc.get("tasks")
    if isinstance(tasks, list) and len(tasks) > MAX_TASKS:
        raise DefinitionError(
            f"the definition has {len(tasks)} tasks; at most {MAX_TASKS} are allowed "
            "(use `each` to fan out over many items)",
            details=[{"loc": ["tasks"], "msg": f"more than {MAX_TASKS} tasks"}],
        )
    bad = _non_finite(doc)
    if bad is not None:
        raise DefinitionError(f"{bad}: NaN and Infinity are not JSON values")
    try:
        definition = Definition.model_validate(doc)
    except ValidationError as exc:
        summary, details = format_validation_error(exc)
        raise DefinitionError(f"invalid definition: {summary}", details=details) from exc
    names = Counter(t.name for t in definition.tasks)
    duplicates = sorted(n for n, count in names.items() if count > 1)
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
