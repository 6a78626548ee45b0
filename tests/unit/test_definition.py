from __future__ import annotations

import pytest

from treadle.errors import DefinitionError, GraphError
from treadle.model.parse import parse_definition

CHAIN = """
name: chain
inputs:
  day: {type: string, required: true}
tasks:
  - {name: a, kind: noop}
  - {name: b, kind: noop}
  - {name: c, kind: noop, depends_on: []}
"""


def test_absent_depends_on_means_previous_task_and_empty_means_root() -> None:
    definition = parse_definition(CHAIN)
    assert definition.dependencies() == {"a": [], "b": ["a"], "c": []}
    assert definition.inputs["day"].required is True


def test_json_and_yaml_give_the_same_definition() -> None:
    as_json = parse_definition(
        '{"name": "chain", "inputs": {"day": {"type": "string", "required": true}},'
        ' "tasks": [{"name": "a", "kind": "noop"}, {"name": "b", "kind": "noop"},'
        ' {"name": "c", "kind": "noop", "depends_on": []}]}',
        "application/json",
    )
    assert as_json == parse_definition(CHAIN)


def test_unknown_kind_is_rejected_naming_the_field() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition("name: x\ntasks:\n  - {name: a, kind: teleport}\n")
    assert "teleport" in info.value.message
    assert "tasks.0" in info.value.message


def test_misspelt_field_is_rejected() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition("name: x\ntasks:\n  - {name: a, kind: shell, comand: [ls]}\n")
    assert "comand" in info.value.message


def test_string_command_needs_shell_true() -> None:
    with pytest.raises(DefinitionError, match="shell: true"):
        parse_definition("name: x\ntasks:\n  - {name: a, kind: shell, command: 'ls -l'}\n")
    ok = parse_definition(
        "name: x\ntasks:\n  - {name: a, kind: shell, command: 'ls -l', shell: true}\n"
    )
    assert ok.tasks[0].kind == "shell"


def test_cycle_is_rejected_naming_the_cycle() -> None:
    with pytest.raises(GraphError) as info:
        parse_definition(
            "name: x\ntasks:\n"
            "  - {name: a, kind: noop, depends_on: [c]}\n"
            "  - {name: b, kind: noop, depends_on: [a]}\n"
            "  - {name: c, kind: noop, depends_on: [b]}\n"
        )
    assert "cycle" in info.value.message
    for name in ("a", "b", "c"):
        assert name in info.value.details["cycle"]


def test_unknown_dependency_is_rejected_naming_it() -> None:
    with pytest.raises(GraphError, match="a -> ghost"):
        parse_definition("name: x\ntasks:\n  - {name: a, kind: noop, depends_on: [ghost]}\n")


def test_duplicate_task_names_are_rejected() -> None:
    with pytest.raises(DefinitionError, match="duplicate task names: a"):
        parse_definition("name: x\ntasks:\n  - {name: a, kind: noop}\n  - {name: a, kind: noop}\n")


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition("name: x\ntasks:\n  - name: a\n    kind: [noop\n")
    assert "line" in info.value.message
    assert info.value.details["line"] >= 4


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(DefinitionError, match="line 1, column"):
        parse_definition('{"name": "x", "tasks": [}', "application/json")


def test_durations_accept_units() -> None:
    definition = parse_definition(
        "name: x\ntasks:\n  - {name: a, kind: sleep, seconds: 500ms, timeout: 2m}\n"
    )
    task = definition.tasks[0]
    assert task.kind == "sleep"
    assert task.seconds == 0.5
    assert task.timeout == 120.0


def test_yaml_keeps_on_and_yes_as_strings() -> None:
    definition = parse_definition("name: x\ntasks:\n  - {name: a, kind: log, message: yes}\n")
    assert definition.tasks[0].message == "yes"  # type: ignore[union-attr]


def test_deeply_nested_document_is_refused() -> None:
    doc = "name: x\nvars:\n  v: " + "[" * 100 + "]" * 100 + "\ntasks: []\n"
    with pytest.raises(DefinitionError, match="nested deeper"):
        parse_definition(doc)
