"""Hostile templates: sandbox escapes and resource bombs end in a TemplateError naming why."""

from __future__ import annotations

import pytest

from treadle.errors import TemplateError
from treadle.model.template_sandbox import BoundedSandbox
from treadle.model.templating import _ENV, render_string
from treadle.testing import run_local

CONTEXT = {"inputs": {"x": "hi", "items": [1, 2]}, "vars": {}, "x": "abc"}

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x.__class__.__mro__[1].__subclasses__() }}",
    "{{ inputs.__class__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ range.__globals__ }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '{x.__class__}'.format_map({'x': x}) }}",
    "{% set f = '{0.__class__}'.format %}{{ f(x) }}",
    "{{ ('{0.__class__}'|attr('format'))(x) }}",
    "{{ ''|attr('__class__') }}",
    "{{ x|attr('__class__')|attr('__mro__') }}",
    "{{ inputs.items.append(3) }}",
    "{{ inputs.pop('x') }}",
    "{{ inputs.items.clear() }}",
]

BOMBS = [
    ("{{ range(10**9)|list }}", "range()"),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "iterations",
    ),
    ("{{ 'a' * 10**9 }}", "over the limit"),
    ("{{ [1] * 10**9 }}", "over the limit"),
    ("{{ 10 ** 100000 }}", "digits"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper"),
    ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}", "longer than"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "longer than",
    ),
    ("{{ lipsum(10**6) }}", "lipsum()"),
    ("{{ ('a' * 999999)|replace('a', 'a' * 999999) }}", "|replace"),
    ("{{ 'x'|center(10**9) }}", "|center"),
    ("{{ x|indent(10**9) }}", "|indent"),
    ("{{ (['a'] * 999999) + (['b'] * 999999) }}", "'+'"),
    ("{% for i in range(100000) %}{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}", "exceeds"),
]


def test_the_environment_is_the_immutable_sandbox() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    assert isinstance(_ENV, BoundedSandbox)
    assert isinstance(_ENV, ImmutableSandboxedEnvironment)


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_string(source, CONTEXT, "message")
    message = info.value.message
    assert message.startswith("template ")
    assert "in `message`" in message
    # refused outright, or the unsafe name is unknown to the sandbox: never rendered
    assert any(word in message for word in ("unsafe", "no attribute", "out of range")), message
    assert CONTEXT["inputs"] == {"x": "hi", "items": [1, 2]}  # nothing was mutated


@pytest.mark.parametrize(("source", "names"), BOMBS)
def test_resource_bombs_are_bounded(source: str, names: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_string(source, CONTEXT, "message")
    assert "template refused in `message`" in info.value.message
    assert names in info.value.message, info.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ range(3)|list }}", [0, 1, 2]),
        ("{{ range(5)|length }}", 5),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{{ 2 ** 10 }}", 1024),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 'abc'|replace('b', 'XX') }}", "aXXc"),
        ("{{ 'x'|center(5) }}", "  x  "),
        ("{% set ns = namespace(n=0) %}{% set ns.n = ns.n + 2 %}{{ ns.n }}", "2"),
        (
            "{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
            "3210",
        ),
        ("{{ lipsum(1, html=False)|length > 0 }}", True),
    ],
)
def test_ordinary_templates_still_work(source: str, expected: object) -> None:
    assert render_string(source, CONTEXT) == expected


def test_a_budget_does_not_leak_between_renders() -> None:
    loop = "{% for i in range(90000) %}{% endfor %}ok"
    for _ in range(20):  # 20 x 90,000 iterations: more than one render's budget in total
        assert render_string(loop, CONTEXT) == "ok"


def test_a_hostile_template_fails_its_run_with_a_clear_error() -> None:
    definition = {
        "name": "hostile-template",
        "tasks": [
            {"name": "ok", "kind": "log", "message": "fine"},
            {
                "name": "escape",
                "kind": "log",
                "message": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                "depends_on": [],
            },
            {
                "name": "bomb",
                "kind": "shell",
                "command": ["echo", "{{ 'a' * 10**9 }}"],
                "depends_on": [],
            },
        ],
    }
    run = run_local(definition, timeout=60)
    assert run.status == "failed"
    assert run.task("ok").status == "completed"
    escape = run.task("escape")
    assert escape.status == "failed"
    assert "unsafe" in (escape.error or "")
    bomb = run.task("bomb")
    assert bomb.status == "failed"
    assert "over the limit" in (bomb.error or "")
