"""Rendering of task templates in a Jinja2 sandbox.

Templates are rendered right before a task is dispatched, so they see the outputs of every task
that finished before it. A string that is one whole expression (``"{{ tasks.a.output.json }}"``)
keeps the expression's native type; any other string renders to text.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import jinja2

from treadle.errors import TemplateError
from treadle.model.template_sandbox import (
    MAX_RENDERED_CHARS,
    BoundedSandbox,
    TemplateLimit,
    check_size,
    make_environment,
    render_budget,
)

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)

# Fields that are structure, not content: they are never rendered as templates.
UNRENDERED_FIELDS = frozenset(
    {
        "name",
        "kind",
        "depends_on",
        "description",
        "outputs",
        "if",
        "trigger_rule",
        "allow_failure",
        "retry",
        "queue",
        "priority",
        "timeout",
        "each",
        "max_parallel",
        "layer",
        "paused",
        "pre",  # rendered step by step by the scheduler
        "post",  # rendered by the worker once the task's outcome is known
    }
)


def _to_json(value: Any) -> str:
    return json.dumps(value, default=str)


def _make_env() -> BoundedSandbox:
    env = make_environment()
    env.filters["tojson"] = _to_json
    env.filters["json"] = _to_json
    return env


_ENV = _make_env()

SHELL_VAR_PREFIX = "TREADLE_TPL_"
_SHELL_VALUES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "treadle_shell_values", default=None
)


def _shell_placeholder(value: Any) -> str:
    values = _SHELL_VALUES.get()
    if values is None:  # pragma: no cover - only the shell environment uses this finalize
        raise RuntimeError("shell template rendered outside render_shell_script")
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises, naming the missing name
    if isinstance(value, dict | list):
        text = json.dumps(value)
    else:
        text = "" if value is None else str(value)
    values.append(text)
    return "${" + f"{SHELL_VAR_PREFIX}{len(values) - 1}" + "}"


def _make_shell_env() -> BoundedSandbox:
    env = make_environment(finalize=_shell_placeholder)
    env.filters["tojson"] = _to_json
    env.filters["json"] = _to_json
    return env


_SHELL_ENV = _make_shell_env()


# Compiling is the costly part of rendering; a fan-out renders one spec thousands of times.
@functools.lru_cache(maxsize=4096)
def _compiled_expression(expression: str) -> Any:
    return _ENV.compile_expression(expression, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _compiled_template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def has_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def render_string(source: str, context: Mapping[str, Any], where: str = "") -> Any:
    """Render one template string; a lone ``{{ expr }}`` keeps its native type."""
    if not has_template(source):
        return source
    return render_string_with(None, source, context, where)


def render_string_with(
    env: BoundedSandbox | None, source: str, context: Mapping[str, Any], where: str = ""
) -> Any:
    """:func:`render_string` in ``env`` (None: the default environment, native types kept)."""
    label = f" in `{where}`" if where else ""
    try:
        with render_budget():
            if env is not None:
                return _render_text(env.from_string(source), context)
            return _render(source, context, label)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error{label}: {source!r}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template error{label}: {source!r}: {exc.message}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"template refused{label}: {source!r}: {exc}") from exc
    except TemplateLimit as exc:
        raise TemplateError(f"template refused{label}: {_short(source)}: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(
            f"template refused{label}: {_short(source)}: it recurses too deeply"
        ) from exc
    except MemoryError as exc:
        raise TemplateError(f"template refused{label}: {_short(source)}: out of memory") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(f"template error{label}: {source!r}: {exc}") from exc


def _short(source: str) -> str:
    return repr(source if len(source) <= 200 else source[:200] + "...")


def _render(source: str, context: Mapping[str, Any], label: str) -> Any:
    match = _WHOLE_EXPRESSION.match(source)
    if match and "{%" not in source:
        expression = _compiled_expression(match.group("expr").strip())
        value = expression(**context)
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises here, naming the missing name
        return check_size(value, f"template output{label}")
    return _render_text(_compiled_template(source), context)


def _render_text(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    # Streamed so an oversized output stops as soon as it passes the cap.
    parts: list[str] = []
    size = 0
    for part in template.generate(**context):
        size += len(part)
        if size > MAX_RENDERED_CHARS:
            raise TemplateLimit(f"template output exceeds {MAX_RENDERED_CHARS} characters")
        parts.append(part)
    return "".join(parts)


def render_value(value: Any, context: Mapping[str, Any], where: str = "") -> Any:
    """Render every string inside ``value`` (dicts and lists walked recursively)."""
    if isinstance(value, str):
        return render_string(value, context, where)
    if isinstance(value, list):
        return [render_value(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            k: render_value(v, context, f"{where}.{k}" if where else k) for k, v in value.items()
        }
    return value


def render_text(value: Any, context: Mapping[str, Any], where: str = "") -> str:
    """Render and coerce to text (argv items, URLs, messages)."""
    rendered = render_string(value, context, where) if isinstance(value, str) else value
    if isinstance(rendered, str):
        return rendered
    if isinstance(rendered, dict | list):
        return json.dumps(rendered)
    return "" if rendered is None else str(rendered)


def render_task_spec(spec: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render a task's spec (its JSON document) except the structural fields."""
    out: dict[str, Any] = {}
    script_env: dict[str, str] = {}
    for key, value in spec.items():
        if key in UNRENDERED_FIELDS:
            out[key] = value
        elif key == "command" and isinstance(value, str) and spec.get("shell"):
            out[key], script_env = render_shell_script(value, context)
        elif key in {"command", "url", "message", "body", "method", "cwd"} or key == "env":
            out[key] = _render_textual(key, value, context)
        else:
            out[key] = render_value(value, context, key)
    if script_env:
        out["env"] = {**(out.get("env") or {}), **script_env}
    return out


def render_shell_script(source: str, context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Render a ``shell: true`` script without splicing values into it.

    Each ``{{ expr }}`` becomes a reference to an environment variable (``${TREADLE_TPL_0}``)
    that holds the value, so ``$(id)``, backticks, ``;`` or ``|`` in a value stay text: the
    shell expands a variable once and never parses its value as commands. ``{% %}`` blocks
    work as in any template.
    """
    if not has_template(source):
        return source, {}
    values: list[str] = []
    token = _SHELL_VALUES.set(values)
    try:
        script = render_string_with(_SHELL_ENV, source, context, "command")
    finally:
        _SHELL_VALUES.reset(token)
    return script, {f"{SHELL_VAR_PREFIX}{i}": v for i, v in enumerate(values)}


def _render_textual(key: str, value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [render_text(v, context, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_text(v, context, f"{key}.{k}") for k, v in value.items()}
    return render_text(value, context, key)


def evaluate_condition(source: Any, context: Mapping[str, Any]) -> bool:
    """Truth of an ``if`` field: a template, or a bare expression."""
    if isinstance(source, bool):
        return source
    text = str(source)
    if not has_template(text):
        text = "{{ " + text + " }}"
    value = render_string(text, context, "if")
    if isinstance(value, str):
        return value.strip().lower() not in {"", "false", "0", "no", "none", "null", "off"}
    return bool(value)
