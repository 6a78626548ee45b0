"""The graph being built while a ``@treadle.workflow`` function runs, and the task builders.

``shell``, ``http``, ``log``, ``sleep``, ``noop`` and ``python`` add one task of their kind to the
workflow being built and return a :class:`TaskRef`. Dependencies come from data flow (a ref or a
``tasks.x`` template in any field) plus ``depends_on=``; retries and timeouts are arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from treadle.workflows.refs import Ref, TaskRef, mentioned_tasks, to_template

# Fields shared by every kind, in the order they are written out.
COMMON = (
    "description",
    "if",
    "trigger_rule",
    "allow_failure",
    "retry",
    "timeout",
    "queue",
    "priority",
    "env",
    "outputs",
)


@dataclass(slots=True)
class GraphBuilder:
    """Collects task documents in the order the workflow function creates them."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    deps: dict[str, list[str]] = field(default_factory=dict)

    def unique_name(self, base: str) -> str:
        if base not in self.deps:
            return base
        n = 2
        while f"{base}-{n}" in self.deps:
            n += 1
        return f"{base}-{n}"

    def add(
        self,
        name: str,
        kind: str,
        spec: Mapping[str, Any],
        common: Mapping[str, Any],
        depends_on: Sequence[TaskRef | str] | None,
    ) -> TaskRef:
        if name in self.deps:
            raise ValueError(f"the workflow already has a task named {name!r}")
        body = to_template(dict(spec))
        options = {key: to_template(common[key]) for key in COMMON if common.get(key) is not None}
        deps = mentioned_tasks([body, options], self.deps)
        for dep in depends_on or ():
            dep_name = dep.name if isinstance(dep, TaskRef) else str(dep)
            if dep_name not in self.deps:
                raise ValueError(f"task {name!r} depends on unknown task {dep_name!r}")
            if dep_name not in deps:
                deps.append(dep_name)
        self.deps[name] = deps
        self.tasks.append({"name": name, "kind": kind, **body, **options})
        return TaskRef(name)

    def documents(self) -> list[dict[str, Any]]:
        """Task documents; ``depends_on`` is written only where 'the previous task' is wrong."""
        out: list[dict[str, Any]] = []
        previous: str | None = None
        for doc in self.tasks:
            deps = self.deps[doc["name"]]
            implicit = [previous] if previous is not None else []
            item = dict(doc)
            if deps != implicit:
                item["depends_on"] = list(deps)
            out.append(item)
            previous = doc["name"]
        return out


_BUILDER: ContextVar[GraphBuilder | None] = ContextVar("treadle_graph_builder", default=None)


def current_builder() -> GraphBuilder | None:
    return _BUILDER.get()


@contextmanager
def building() -> Iterator[GraphBuilder]:
    builder = GraphBuilder()
    token = _BUILDER.set(builder)
    try:
        yield builder
    finally:
        _BUILDER.reset(token)


def _require(kind: str) -> GraphBuilder:
    builder = _BUILDER.get()
    if builder is None:
        raise RuntimeError(
            f"treadle.{kind}() adds a task to a workflow: call it inside a @treadle.workflow "
            "function"
        )
    return builder


def retry_policy(retry: int | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``retry=3`` means at most three attempts; a mapping is a full native retry policy."""
    if retry is None:
        return None
    if isinstance(retry, bool) or not isinstance(retry, int | Mapping):
        raise TypeError("retry is a number of attempts or a mapping of the native retry fields")
    if isinstance(retry, int):
        return {"max_attempts": retry}
    return dict(retry)


def _add(
    kind: str,
    default_name: str,
    spec: Mapping[str, Any],
    name: str | None,
    depends_on: Sequence[TaskRef | str] | None,
    options: dict[str, Any],
) -> TaskRef:
    builder = _require(kind)
    options["retry"] = retry_policy(options.get("retry"))
    options["if"] = options.pop("if_", None)
    unknown = set(options) - set(COMMON)
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    task_name = name or builder.unique_name(default_name)
    return builder.add(
        task_name, kind, {k: v for k, v in spec.items() if v is not None}, options, depends_on
    )


def shell(
    command: Sequence[Any] | str,
    *,
    name: str | None = None,
    shell: bool | None = None,
    cwd: str | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """A ``shell`` task: a list is argv; a string needs ``shell=True``."""
    cmd = command if isinstance(command, str) else list(command)
    return _add(
        "shell", "shell", {"command": cmd, "shell": shell, "cwd": cwd}, name, depends_on, options
    )


def http(
    url: str | Ref,
    *,
    method: str | None = None,
    name: str | None = None,
    headers: Mapping[str, Any] | None = None,
    body: str | None = None,
    json: Any = None,
    accept: Sequence[int | str] | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """An ``http`` task."""
    spec = {
        "method": method,
        "url": url,
        "headers": dict(headers) if headers else None,
        "body": body,
        "json": json,
        "accept": list(accept) if accept is not None else None,
    }
    return _add("http", "http", spec, name, depends_on, options)


def log(
    message: str | Ref,
    *,
    level: str | None = None,
    name: str | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """A ``log`` task: writes ``message`` to the run's log."""
    return _add("log", "log", {"message": message, "level": level}, name, depends_on, options)


def sleep(
    seconds: float | str,
    *,
    name: str | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """A ``sleep`` task."""
    return _add("sleep", "sleep", {"seconds": seconds}, name, depends_on, options)


def noop(
    *,
    name: str | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """A ``noop`` task (a join point)."""
    return _add("noop", "noop", {}, name, depends_on, options)


def python(
    handler: str,
    args: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    depends_on: Sequence[TaskRef | str] | None = None,
    **options: Any,
) -> TaskRef:
    """A ``python`` task calling the handler registered as ``handler``."""
    spec = {"handler": handler, "args": dict(args) if args else None}
    return _add("python", handler, spec, name, depends_on, options)
