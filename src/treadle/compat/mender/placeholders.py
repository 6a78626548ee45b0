"""Mender's ``${...}`` placeholders rewritten as Jinja over the native template context.

Forms (``[options;]name[|default]``, the only option being ``encoding=url|html|plain``):

- ``${workflow.input.X}``: the input, as Mender turns values into text (strings as they are,
  arrays comma-joined, other values as JSON, a missing value as "").
- ``${env.X}``: an environment variable, read when the workflow is loaded.
- ``${TASK.json.PATH}``: a field of an earlier task's JSON response (HTTP body or CLI stdout);
  PATH is dotted, with ``[0]`` for list items.
- A ``|default`` replaces an empty value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from treadle.compat.jinja_text import escape_text, literal, subscript
from treadle.errors import DefinitionError

_PLACEHOLDER = re.compile(r"\$\{(?P<body>[^{}]*)\}")
_OPTION = re.compile(r"^(?P<key>[A-Za-z_]+)=(?P<value>[A-Za-z_]*)$")
_INDEX = re.compile(r"^\[(\d+)\]$")
_ENCODINGS = {"url": " | urlencode", "html": " | escape | string", "plain": ""}


@dataclass(slots=True)
class Scope:
    """What placeholders may refer to at one place of a workflow."""

    environ: Mapping[str, str]
    earlier_tasks: Collection[str] = ()
    inputs_used: set[str] = field(default_factory=set)


def as_text(expr: str) -> str:
    """A Jinja expression turning ``expr``'s value into text the way Mender does."""
    return (
        f"({expr} if {expr} is string else ('' if {expr} is none else "
        f"(({expr} | join(',')) if ({expr} is sequence and {expr} is not mapping) "
        f"else ({expr} | tojson))))"
    )


def _json_path(path: str, where: str) -> list[str | int]:
    keys: list[str | int] = []
    for part in path.split("."):
        index = _INDEX.match(part)
        if index:
            keys.append(int(index.group(1)))
        elif part:
            keys.append(part)
        else:
            raise DefinitionError(f"{where}: empty part in JSON path {path!r}")
    return keys


def _value(name: str, scope: Scope, where: str) -> str:
    """The Jinja expression for a placeholder name (without default or encoding)."""
    if name.startswith("workflow.input."):
        key = name[len("workflow.input.") :]
        if not key:
            raise DefinitionError(f"{where}: ${{workflow.input.}} names no input")
        scope.inputs_used.add(key)
        return as_text(subscript("inputs", [key]))
    if name.startswith("env."):
        return literal(scope.environ.get(name[4:], ""))
    task, dot, rest = name.partition(".json")
    if dot and task in scope.earlier_tasks and (not rest or rest.startswith(".")):
        base = subscript("tasks", [task]) + ".output.json"
        keys = _json_path(rest[1:], where) if rest else []
        return as_text(subscript(base, keys))
    raise DefinitionError(
        f"{where}: cannot resolve ${{{name}}}: use workflow.input.NAME, env.NAME or "
        "TASK.json.PATH with TASK an earlier task"
    )


def placeholder_expr(body: str, scope: Scope, where: str) -> str:
    """The Jinja expression for the inside of one ``${...}``."""
    *options, last = body.split(";")
    name, bar, default = last.partition("|")
    expr = _value(name.strip(), scope, where)
    if bar:
        expr = f"({expr} or {literal(default)})"
    for option in options:
        match = _OPTION.match(option.strip())
        if not match or match.group("key") != "encoding":
            raise DefinitionError(f"{where}: unknown placeholder option {option!r}")
        encoding = match.group("value")
        if encoding not in _ENCODINGS:
            raise DefinitionError(f"{where}: encoding must be url, html or plain, not {encoding!r}")
        expr = f"({expr}{_ENCODINGS[encoding]})"
    return expr


def parts(text: str, scope: Scope, where: str) -> list[tuple[bool, str]]:
    """``text`` split into (is_expression, literal text or Jinja expression) pieces."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            pieces.append((False, text[position : match.start()]))
        pieces.append((True, placeholder_expr(match.group("body"), scope, where)))
        position = match.end()
    if position < len(text):
        pieces.append((False, text[position:]))
    return pieces


def to_template(text: str, scope: Scope, where: str) -> str:
    """``text`` with placeholders as a native template string."""
    return "".join(
        "{{ " + piece + " }}" if is_expr else escape_text(piece)
        for is_expr, piece in parts(text, scope, where)
    )


def to_expression(text: str, scope: Scope, where: str) -> str:
    """``text`` with placeholders as one Jinja expression producing the text."""
    pieces = [piece if is_expr else literal(piece) for is_expr, piece in parts(text, scope, where)]
    return "(" + " ~ ".join(pieces) + ")" if pieces else "''"


def raw_input_reference(text: str) -> str | None:
    """For a JSON string that is exactly ``${workflow.input.X}``: ``X`` (its value is inserted
    as JSON, not as text)."""
    match = _PLACEHOLDER.fullmatch(text.strip())
    if match and match.group("body").startswith("workflow.input.") and "|" not in text:
        key = match.group("body")[len("workflow.input.") :]
        return key or None
    return None
