"""gin workflow documents -> native definitions.

A gin workflow is ``{"Name", "Variables", "Steps": [{"Name", "Type", "Context", "Register"}]}``.
gin's Go structs carry no JSON tags, so keys match case-insensitively (``name`` works as well as
``Name``) and, as in Go, the last of several spellings wins.

Mapping:

- ``Variables`` (gin's ``.Defaults``) become native ``vars``; the start request's ``Variables``
  (gin's ``.Runtime``) become the run's ``inputs``.
- Steps run one after another, as in gin (each native task depends on the previous one).
- ``post-to-web`` / ``get-from-web`` become ``http`` tasks, ``log`` a ``log`` task, and any
  other type a ``python`` task calling the handler registered under that type name with the
  step's compiled context as keyword arguments (gin's JobManager custom jobs).
- ``{{.Defaults.x}}``, ``{{.Runtime.x}}`` and ``{{.register.field}}`` are rewritten to Jinja over
  ``vars``, ``inputs`` and the registering task's output; templates still compile right before
  each step runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from treadle.compat.gin.gotemplate import GoTemplateError, has_actions, to_jinja
from treadle.compat.jinja_text import escape_text, literal, subscript
from treadle.errors import DefinitionError

WORKFLOW_FIELDS = ("Name", "Steps", "Variables")
# Every field of gin's Step struct: workflows gin saved in Redis carry the run-data ones too.
STEP_FIELDS = (
    "Context",
    "Duration",
    "End",
    "ErrorMessage",
    "Failed",
    "Name",
    "Register",
    "Start",
    "Type",
    "UUID",
)
WEB_TYPES = {"post-to-web": "POST", "get-from-web": "GET"}


def fold_keys(doc: Mapping[str, Any], fields: tuple[str, ...], where: str) -> dict[str, Any]:
    """Map keys onto Go field names case-insensitively; unknown keys are an error."""
    by_lower = {f.lower(): f for f in fields}
    result: dict[str, Any] = {}
    unknown = []
    for key, value in doc.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            unknown.append(str(key))
        else:
            result[name] = value  # later spellings win, as with Go's decoder
    if unknown:
        raise DefinitionError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"gin knows {', '.join(fields)}"
        )
    return result


def looks_like(doc: Any) -> bool:
    """True for a mapping with a ``steps`` list (any case) and no native ``tasks``."""
    if not isinstance(doc, dict) or "tasks" in doc:
        return False
    steps = [v for k, v in doc.items() if str(k).lower() == "steps"]
    return bool(steps) and isinstance(steps[-1], list)


@dataclass(frozen=True, slots=True)
class GinStep:
    name: str
    type: str
    context: dict[str, str]
    register: str


@dataclass(frozen=True, slots=True)
class GinWorkflow:
    """A gin workflow with keys normalised and values checked."""

    name: str
    variables: dict[str, str]
    steps: list[GinStep]

    def to_document(self) -> dict[str, Any]:
        """gin's own JSON shape (Go field names)."""
        return {
            "Name": self.name,
            "Steps": [
                {"Name": s.name, "Type": s.type, "Context": dict(s.context), "Register": s.register}
                for s in self.steps
            ],
            "Variables": dict(self.variables),
        }


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DefinitionError(f"{where} must be an object of strings")
    result = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        elif item is None:
            item = ""
        if not isinstance(item, str):
            raise DefinitionError(f"{where}.{key} must be a string, got {type(item).__name__}")
        result[str(key)] = item
    return result


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DefinitionError(f"{where} must be a string")
    return value


def parse_workflow(doc: Any) -> GinWorkflow:
    """Check a gin workflow document; errors name the offending key."""
    if not isinstance(doc, dict):
        raise DefinitionError("a gin workflow must be a JSON object with Name and Steps")
    top = fold_keys(doc, WORKFLOW_FIELDS, "workflow")
    name = _text(top.get("Name"), "Name").strip()
    if not name:
        raise DefinitionError("gin workflow: Name is missing")
    raw_steps = top.get("Steps")
    if not isinstance(raw_steps, list):
        raise DefinitionError(f"gin workflow {name!r}: Steps must be a list")
    steps = []
    for index, raw in enumerate(raw_steps):
        where = f"Steps[{index}]"
        if not isinstance(raw, dict):
            raise DefinitionError(f"{where} must be an object")
        fields = fold_keys(raw, STEP_FIELDS, where)
        step_name = _text(fields.get("Name"), f"{where}.Name")
        step_type = _text(fields.get("Type"), f"{where}.Type")
        if not step_name:
            raise DefinitionError(f"{where}: Name is missing")
        if not step_type:
            raise DefinitionError(f"{where} ({step_name!r}): Type is missing")
        steps.append(
            GinStep(
                step_name,
                step_type,
                _string_map(fields.get("Context"), f"{where}.Context"),
                _text(fields.get("Register"), f"{where}.Register"),
            )
        )
    return GinWorkflow(name, _string_map(top.get("Variables"), "Variables"), steps)


def output_base(step: GinStep) -> str:
    """Where a step's gin ``Data`` lives in the native context."""
    task = subscript("tasks", [step.name]) + ".output"
    return task + ".json" if step.type in WEB_TYPES else task


class _Resolver:
    """Maps a root field chain of a step's template to native context expressions."""

    def __init__(self, registered: dict[str, GinStep]) -> None:
        self.registered = registered

    def __call__(self, parts: list[str]) -> str:
        head, rest = parts[0], list(parts[1:])
        if head == "Defaults":
            return subscript("vars", list(rest)) if rest else "vars"
        if head == "Runtime":
            return subscript("inputs", list(rest)) if rest else "inputs"
        step = self.registered.get(head)
        if step is None:
            known = ", ".join(["Defaults", "Runtime", *self.registered]) or "none"
            raise GoTemplateError(
                f".{head} is not Defaults, Runtime or the Register of an earlier step "
                f"(known here: {known})"
            )
        return subscript(output_base(step), list(rest))


def compile_value(source: str, registered: dict[str, GinStep], where: str) -> str:
    """One context value as a native template string."""
    if not has_actions(source):
        return escape_text(source)
    try:
        return to_jinja(source, _Resolver(registered))
    except GoTemplateError as exc:
        raise DefinitionError(f"{where}: {exc}") from exc


def _task(step: GinStep, context: dict[str, str]) -> dict[str, Any]:
    task: dict[str, Any] = {"name": step.name}
    method = WEB_TYPES.get(step.type)
    if method is not None:
        task.update(kind="http", method=method, url=context.get("url", ""))
        if method == "POST":
            task["headers"] = {"Content-Type": context.get("content-type", "")}
            task["body"] = context.get("data", "")
    elif step.type == "log":
        task.update(kind="log", message=context.get("message", ""))
    else:
        task.update(kind="python", handler=step.type, args=context)
    return task


def _vars(variables: dict[str, str]) -> dict[str, str]:
    # Native vars are rendered as templates; gin's Defaults are plain strings.
    return {k: escape_text(v) for k, v in variables.items()}


def translate(workflow: GinWorkflow) -> dict[str, Any]:
    """The native definition of a checked gin workflow."""
    registered: dict[str, GinStep] = {}
    tasks = []
    for index, step in enumerate(workflow.steps):
        context = {
            key: compile_value(value, registered, f"Steps[{index}] ({step.name!r}) Context.{key}")
            for key, value in step.context.items()
        }
        tasks.append(_task(step, context))
        if step.register:
            registered[step.register] = step
    return {
        "name": workflow.name,
        "description": f"gin workflow {literal(workflow.name)}",
        "vars": _vars(workflow.variables),
        "tasks": tasks,
    }


def to_native(doc: Any) -> dict[str, Any]:
    """Translate a gin workflow document into a native definition document."""
    return translate(parse_workflow(doc))
