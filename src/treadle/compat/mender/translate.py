"""Mender workflow documents -> native definitions.

A Mender workflow is ``{"name", "description", "version", "tasks", "inputParameters",
"optionalParameters", "schemaVersion"}``; tasks are ``http`` (``uri``, ``method``, ``headers``,
``payload`` / ``body`` / ``json`` / ``formdata``, ``contentType``, ``statusCodes``,
``connectionTimeOut`` and ``readTimeOut`` in milliseconds) or ``cli`` (``command`` argv,
``executionTimeOut`` in seconds), with ``retries``, ``retryDelaySeconds`` and ``requires``.
Keys match case-insensitively, as Mender's first version (untagged Go structs) read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from treadle.compat.jinja_text import escape_text, subscript
from treadle.compat.mender import placeholders as ph
from treadle.errors import DefinitionError

WORKFLOW_FIELDS = (
    "name",
    "description",
    "version",
    "schemaVersion",
    "tasks",
    "inputParameters",
    "optionalParameters",
    "topic",
    "ephemeral",
)
TASK_FIELDS = ("name", "type", "retries", "retryDelaySeconds", "requires", "http", "cli")
HTTP_FIELDS = (
    "uri",
    "method",
    "contentType",
    "payload",
    "body",
    "json",
    "formdata",
    "statusCodes",
    "headers",
    "connectionTimeOut",
    "readTimeOut",
)
CLI_FIELDS = ("command", "executionTimeOut")
UNSUPPORTED_TYPES = ("nats", "smtp")
DEFAULT_CLI_TIMEOUT = 4 * 3600  # Mender: an execution timeout <= 0 means four hours


def fold(doc: Any, fields: tuple[str, ...], where: str) -> dict[str, Any]:
    """Keys mapped onto their canonical spelling case-insensitively; unknown keys rejected."""
    if not isinstance(doc, dict):
        raise DefinitionError(f"{where} must be an object")
    by_lower = {f.lower(): f for f in fields}
    result: dict[str, Any] = {}
    unknown = []
    for key, value in doc.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            unknown.append(str(key))
        else:
            result[name] = value
    if unknown:
        raise DefinitionError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(fields)}"
        )
    return result


def looks_like(doc: Any) -> bool:
    """True for Mender's shape: tasks typed http/cli/... or Mender-only top-level keys."""
    if not isinstance(doc, dict):
        return False
    keys = {str(k).lower() for k in doc}
    if keys & {"inputparameters", "optionalparameters", "schemaversion"}:
        return True
    tasks = doc.get("tasks")
    return (
        isinstance(tasks, list)
        and bool(tasks)
        and all(
            isinstance(t, dict)
            and "kind" not in t
            and str(t.get("type", "")).lower() in ("http", "cli", *UNSUPPORTED_TYPES)
            for t in tasks
        )
    )


def _names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DefinitionError(f"{where} must be a list of names")
    return list(value)


def _int(value: Any, where: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DefinitionError(f"{where} must be a number, got {value!r}")
    return int(value)


def _text(value: Any, scope: ph.Scope, where: str) -> str:
    if not isinstance(value, str):
        raise DefinitionError(f"{where} must be a string")
    return ph.to_template(value, scope, where)


def _json_value(value: Any, scope: ph.Scope, where: str) -> Any:
    if isinstance(value, str):
        key = ph.raw_input_reference(value)
        if key is not None:
            scope.inputs_used.add(key)
            return "{{ " + subscript("inputs", [key]) + " }}"
        return ph.to_template(value, scope, where)
    if isinstance(value, list):
        return [_json_value(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _json_value(v, scope, f"{where}.{k}") for k, v in value.items()}
    return value


def _formdata(value: Any, scope: ph.Scope, where: str) -> str:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where} must be an object of strings")
    fields = []
    for key, item in value.items():
        text = _text(item, scope, f"{where}.{key}")
        fields.append(
            escape_text(quote(str(key), safe=""))
            + "={% filter urlencode %}"
            + text
            + "{% endfilter %}"
        )
    return "&".join(fields)


def _http(doc: Any, scope: ph.Scope, where: str) -> dict[str, Any]:
    spec = fold(doc, HTTP_FIELDS, where)
    if not spec.get("uri"):
        raise DefinitionError(f"{where}.uri is missing")
    task: dict[str, Any] = {
        "kind": "http",
        "method": str(spec.get("method") or "GET").upper(),
        "url": _text(spec["uri"], scope, f"{where}.uri"),
    }
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        raise DefinitionError(f"{where}.headers must be an object")
    rendered = {str(k): _text(v, scope, f"{where}.headers.{k}") for k, v in headers.items()}
    if spec.get("contentType"):
        rendered["Content-Type"] = _text(spec["contentType"], scope, f"{where}.contentType")
    if spec.get("formdata") is not None:
        task["body"] = _formdata(spec["formdata"], scope, f"{where}.formdata")
        rendered.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif spec.get("json") is not None:
        task["json"] = _json_value(spec["json"], scope, f"{where}.json")
    elif spec.get("body") is not None:
        task["body"] = _text(spec["body"], scope, f"{where}.body")
    elif spec.get("payload") is not None:
        task["body"] = _text(spec["payload"], scope, f"{where}.payload")
    if rendered:
        task["headers"] = rendered
    codes = spec.get("statusCodes")
    if codes:
        if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes):
            raise DefinitionError(f"{where}.statusCodes must be a list of numbers")
        task["accept"] = list(codes)
    else:
        task["accept"] = ["1xx", "2xx", "3xx"]  # Mender: success is any status below 400
    timeouts = (("connectionTimeOut", "connect_timeout"), ("readTimeOut", "read_timeout"))
    for source, target in timeouts:
        millis = _int(spec.get(source), f"{where}.{source}")
        if millis > 0:
            task[target] = millis / 1000
    return task


def _cli(doc: Any, scope: ph.Scope, where: str) -> dict[str, Any]:
    spec = fold(doc, CLI_FIELDS, where)
    command = spec.get("command")
    if not isinstance(command, list) or not command:
        raise DefinitionError(f"{where}.command must be a non-empty list (argv)")
    timeout = _int(spec.get("executionTimeOut"), f"{where}.executionTimeOut")
    return {
        "kind": "shell",
        "command": [_text(a, scope, f"{where}.command[{i}]") for i, a in enumerate(command)],
        "timeout": timeout if timeout > 0 else DEFAULT_CLI_TIMEOUT,
    }


def _task(doc: Any, scope: ph.Scope, index: int) -> dict[str, Any]:
    where = f"tasks[{index}]"
    fields = fold(doc, (*TASK_FIELDS, *UNSUPPORTED_TYPES), where)
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{where}.name is missing")
    where = f"tasks[{index}] ({name!r})"
    kind = str(fields.get("type") or "").lower()
    if kind in UNSUPPORTED_TYPES:
        raise DefinitionError(f"{where}: task type {kind!r} is not supported (use http or cli)")
    if kind not in ("http", "cli") or fields.get(kind) is None:
        section = kind or "http"
        raise DefinitionError(f"{where}: type must be http or cli, with a matching {section}")
    body = _http if kind == "http" else _cli
    task = {"name": name, **body(fields[kind], scope, f"{where}.{kind}")}
    retries = _int(fields.get("retries"), f"{where}.retries")
    if retries > 0:
        delay = _int(fields.get("retryDelaySeconds"), f"{where}.retryDelaySeconds")
        task["retry"] = {"max_attempts": retries + 1, "backoff": "fixed", "initial": delay}
    requires = _names(fields.get("requires"), f"{where}.requires")
    if requires:
        tests = [
            ph.to_expression(r, scope, f"{where}.requires[{i}]") + " != ''"
            for i, r in enumerate(requires)
        ]
        task["if"] = "{{ " + " and ".join(tests) + " }}"
    return task


def to_native(doc: Any, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Translate a Mender workflow document into a native definition document.

    ``${env.X}`` is read from ``environ`` (default: this process's environment) now, when the
    workflow is loaded.
    """
    top = fold(doc, WORKFLOW_FIELDS, "workflow")
    name = top.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError("Workflow missing name")
    raw_tasks = top.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise DefinitionError(f"workflow {name!r}: tasks must be a non-empty list")
    scope = ph.Scope(environ if environ is not None else os.environ, earlier_tasks=[])
    tasks = []
    for index, raw in enumerate(raw_tasks):
        task = _task(raw, scope, index)
        tasks.append(task)
        scope.earlier_tasks = [*scope.earlier_tasks, task["name"]]
    required = _names(top.get("inputParameters"), "inputParameters")
    optional = _names(top.get("optionalParameters"), "optionalParameters")
    inputs: dict[str, Any] = {n: {"required": True} for n in required}
    for extra in [*optional, *sorted(scope.inputs_used)]:
        inputs.setdefault(extra, {"required": False})
    native: dict[str, Any] = {"name": name, "inputs": inputs, "tasks": tasks}
    description = top.get("description")
    if isinstance(description, str) and description:
        native["description"] = description
    version = _int(top.get("version"), "version")
    if version >= 1:
        native["version"] = version
    return native


def required_inputs(native: Mapping[str, Any]) -> list[str]:
    """The required input names of a (translated) native definition document."""
    inputs = native.get("inputs") or {}
    return [n for n, spec in inputs.items() if isinstance(spec, dict) and spec.get("required")]
