from __future__ import annotations

import pytest

from treadle.errors import TemplateError
from treadle.model.templating import evaluate_condition, render_string, render_task_spec

CONTEXT = {
    "inputs": {"day": "2026-11-23", "n": 3},
    "vars": {"api": "http://127.0.0.1:9000"},
    "tasks": {
        "fetch": {"output": {"json": {"id": 42, "ids": [1, 2]}}},
        "per-item": {"output": [1, 2, 3]},
    },
    "run": {"id": "r1"},
}


def test_structured_outputs_are_reachable() -> None:
    assert render_string("id={{ tasks.fetch.output.json.id }}", CONTEXT) == "id=42"
    assert render_string("{{ tasks['per-item'].output | length }}", CONTEXT) == 3


def test_a_lone_expression_keeps_its_type() -> None:
    assert render_string("{{ tasks.fetch.output.json.ids }}", CONTEXT) == [1, 2]
    assert render_string("{{ inputs.n }}", CONTEXT) == 3


def test_missing_name_fails_naming_the_expression() -> None:
    with pytest.raises(TemplateError) as info:
        render_string("{{ tasks.nothere.output }}", CONTEXT, "url")
    assert "nothere" in info.value.message
    assert "`url`" in info.value.message


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="syntax"):
        render_string("{{ inputs.day ", CONTEXT, "message")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'a'.format.__globals__ }}",
    ],
)
def test_sandbox_refuses_escapes(source: str) -> None:
    with pytest.raises(TemplateError):
        render_string(source, CONTEXT)


def test_argv_items_are_rendered_to_text_without_shell_splicing() -> None:
    spec = {
        "name": "a",
        "kind": "shell",
        "command": ["echo", "{{ inputs.day }}; rm -rf /"],
        "depends_on": ["{{ not rendered }}"],
    }
    rendered = render_task_spec(spec, CONTEXT)
    assert rendered["command"] == ["echo", "2026-11-23; rm -rf /"]
    assert rendered["depends_on"] == ["{{ not rendered }}"]


def test_conditions() -> None:
    assert evaluate_condition("{{ inputs.n > 2 }}", CONTEXT) is True
    assert evaluate_condition("inputs.n > 5", CONTEXT) is False
    assert evaluate_condition("false", CONTEXT) is False
