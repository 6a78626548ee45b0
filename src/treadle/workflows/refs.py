"""Placeholders for values known only at run time, written out as ``{{ ... }}`` templates.

Inside a ``@treadle.workflow`` function, inputs and task results are :class:`Ref` objects.
Passing one into another task makes that task depend on the producer and puts a template in its
spec; a lone reference keeps its native type when rendered, one inside an f-string renders as
text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TASK_MENTION = re.compile(r"""tasks\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(['"])(.+?)\2\s*\])""")


# Jinja resolves ``a.b`` as an attribute first: ``inputs.values`` would be dict.values.
_SHADOWED = frozenset(name for name in dir(dict) if not name.startswith("_"))


def _step(expr: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{expr}[{key}]"
    if _IDENTIFIER.match(key) and key not in _SHADOWED:
        return f"{expr}.{key}"
    return f"{expr}[{key!r}]"


def input_expr(name: str) -> str:
    """``inputs.name``, or ``inputs['name']`` where a dot would not reach the value."""
    return _step("inputs", name)


def task_expr(name: str) -> str:
    """``tasks.name`` or ``tasks['odd-name']`` (Jinja cannot read dashes after a dot)."""
    return _step("tasks", name)


class Ref:
    """An expression such as ``inputs.day`` or ``tasks.fetch.output.json``."""

    __slots__ = ("_expr",)

    def __init__(self, expr: str) -> None:
        self._expr = expr

    @property
    def expression(self) -> str:
        return self._expr

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("__"):
            raise AttributeError(name)
        return Ref(_step(self._expr, name))

    def __getitem__(self, key: str | int) -> Ref:
        return Ref(_step(self._expr, key))

    def __str__(self) -> str:
        return "{{ " + self._expr + " }}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Ref({self._expr!r})"

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self._expr} is only known when the run executes; use `if_=` on a task "
            "instead of a Python `if` inside a workflow function"
        )


class TaskRef:
    """What building a task returns: its name, and ``output`` as a :class:`Ref`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def output(self) -> Ref:
        return Ref(task_expr(self.name) + ".output")

    @property
    def status(self) -> Ref:
        return Ref(task_expr(self.name) + ".status")

    def __getitem__(self, key: str | int) -> Ref:
        return self.output[key]

    def __str__(self) -> str:
        return str(self.output)

    def __format__(self, spec: str) -> str:
        return str(self.output)

    def __repr__(self) -> str:
        return f"TaskRef({self.name!r})"


def to_template(value: Any) -> Any:
    """Replace refs inside ``value`` (dicts, lists, tuples walked) by template strings."""
    if isinstance(value, Ref | TaskRef):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_template(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_template(v) for v in value]
    return value


def mentioned_tasks(value: Any, known: Iterable[str]) -> list[str]:
    """Names of ``known`` tasks that templates inside ``value`` read, in order of mention."""
    names = set(known)
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, str):
            for match in _TASK_MENTION.finditer(item):
                name = match.group(1) or match.group(3)
                if name in names and name not in found:
                    found.append(name)
        elif isinstance(item, Mapping):
            for v in item.values():
                walk(v)
        elif isinstance(item, list | tuple):
            for v in item:
                walk(v)

    walk(value)
    return found
