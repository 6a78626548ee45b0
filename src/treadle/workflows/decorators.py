"""``@treadle.workflow`` and ``@treadle.task``: workflows written as Python functions.

A workflow function runs once, at build time, with its parameters bound to ``inputs.*`` refs;
every task it creates is recorded, and the result is the same native definition a YAML file
would give (see :meth:`Workflow.to_document`). Task functions are also registered as handlers,
so workers that import the module can run them.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from treadle.workflows.builder import (
    building,
    current_builder,
    python,
)
from treadle.workflows.refs import Ref, TaskRef, input_expr

_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    tuple: "array",
}
_TEXT_TYPE_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _input_type(annotation: Any) -> str:
    if isinstance(annotation, str):
        base = annotation.split("[", 1)[0].strip()
        return _TEXT_TYPE_NAMES.get(base) or {"dict": "object", "list": "array"}.get(base, "any")
    origin = typing.get_origin(annotation) or annotation
    if isinstance(origin, type):
        for py_type, name in _TYPE_NAMES.items():
            if origin is py_type:
                return name
        if issubclass(origin, Mapping):
            return "object"
        if issubclass(origin, Sequence) and origin is not str:
            return "array"
    return "any"


def inputs_from_signature(func: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    """Native ``inputs`` from a function's parameters (annotations give the types)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to the raw text
        hints = {}
    spec: dict[str, dict[str, Any]] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"workflow {func.__name__!r}: *args/**kwargs cannot be inputs")
        item: dict[str, Any] = {}
        annotation = hints.get(param.name, param.annotation)
        if annotation is not inspect.Parameter.empty:
            kind = _input_type(annotation)
            if kind != "any":
                item["type"] = kind
        if param.default is inspect.Parameter.empty:
            item["required"] = True
        else:
            item["default"] = param.default
        spec[param.name] = item
    return spec


@dataclass(frozen=True)
class Workflow:
    """A code-first workflow; ``to_document()`` is its native definition."""

    func: Callable[..., Any]
    name: str
    version: int | None = None
    description: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def to_document(self) -> dict[str, Any]:
        """Build the graph and return the validated native document."""
        from treadle.model.parse import definition_from_document

        refs = {name: Ref(input_expr(name)) for name in inspect.signature(self.func).parameters}
        with building() as builder:
            self.func(**refs)
        doc: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            doc["version"] = self.version
        if self.description:
            doc["description"] = self.description
        inputs = inputs_from_signature(self.func)
        if inputs:
            doc["inputs"] = inputs
        if self.vars:
            doc["vars"] = dict(self.vars)
        doc["tasks"] = builder.documents()
        if self.timeout is not None:
            doc["timeout"] = self.timeout
        return definition_from_document(doc).to_document()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the workflow calls the function (refs or real values, your choice)."""
        return self.func(*args, **kwargs)


def workflow(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: int | None = None,
    description: str | None = None,
    vars: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """Turn a function into a :class:`Workflow` (usable bare or with arguments)."""

    def make(f: Callable[..., Any]) -> Workflow:
        doc = description if description is not None else inspect.getdoc(f)
        return Workflow(
            f,
            name or f.__name__.replace("_", "-"),
            version,
            doc.strip().splitlines()[0] if doc else None,
            dict(vars or {}),
            timeout,
        )

    return make(func) if func is not None else make


class TaskFunction:
    """A Python function that is both a handler and, inside a workflow, a task builder."""

    def __init__(
        self, func: Callable[..., Any], handler: str, options: Mapping[str, Any] | None = None
    ) -> None:
        self.func = func
        self.handler = handler
        self.options: dict[str, Any] = dict(options or {})
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_builder() is None:
            return self.func(*args, **kwargs)
        bound = inspect.signature(self.func).bind_partial(*args, **kwargs)
        opts = dict(self.options)
        name = opts.pop("name", None)
        depends_on: Sequence[TaskRef | str] | None = opts.pop("depends_on", None)
        return python(self.handler, dict(bound.arguments), name=name, depends_on=depends_on, **opts)

    def with_options(self, **options: Any) -> TaskFunction:
        """A copy with other task options (``name``, ``retry``, ``timeout``, ``queue``...)."""
        return TaskFunction(self.func, self.handler, {**self.options, **options})

    def __repr__(self) -> str:
        return f"TaskFunction({self.handler!r})"


def task(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    **options: Any,
) -> Any:
    """Register ``func`` as a handler and let workflows call it as a ``python`` task.

    Options are the native task fields: ``retry`` (attempts or a policy mapping), ``timeout``,
    ``queue``, ``priority``, ``if_``, ``trigger_rule``, ``allow_failure``, ``depends_on``.
    Outside a workflow function the decorated function is called as it is.
    """
    from treadle.worker.handlers import handler as register

    def make(f: Callable[..., Any]) -> TaskFunction:
        key = name or f.__name__
        register(key)(f)
        return TaskFunction(f, key, options)

    return make(func) if func is not None else make
