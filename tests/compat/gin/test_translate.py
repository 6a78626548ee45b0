"""gin workflow documents -> native definitions (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from treadle import compat
from treadle.compat.gin.translate import looks_like, parse_workflow, to_native
from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document
from treadle.model.templating import render_task_spec

# The workflow of gin's README (lowercase keys, as printed there). The README's renderer ate the
# templates of the first step's url and content-type; its GET output shows they were the two
# Defaults, so they are restored here. "Templatery Stuff" logs a field of the registered output.
README_WORKFLOW = """{
"name": "do stuff",
"variables": {
"echo_url": "http://172.17.0.1:8000/some-endpoint",
"content_type": "application/data"
},
"steps": [{
"name": "Test Stuff",
"type": "post-to-web",
"context": {
"url": "{{.Defaults.echo_url}}",
"content-type": "{{.Defaults.content_type}}",
"data": "foo=bar"
},
"register": "echo_data"
}, {
"name": "Templatery Stuff",
"type": "log",
"context": {
"message": "{{.echo_data.body}} for {{.Runtime.foo}}"
},
"register": "something"
}]
}"""


def test_readme_workflow_translates_to_a_valid_native_definition() -> None:
    doc = json.loads(README_WORKFLOW)
    assert compat.detect(doc) == "gin"
    native = to_native(doc)
    definition = definition_from_document(native)
    assert definition.name == "do stuff"
    assert [t.kind for t in definition.tasks] == ["http", "log"]
    assert definition.dependencies() == {"Test Stuff": [], "Templatery Stuff": ["Test Stuff"]}


def test_templates_render_against_the_native_context() -> None:
    native = to_native(json.loads(README_WORKFLOW))
    context: dict[str, Any] = {
        "vars": native["vars"],
        "inputs": {"foo": "bar"},
        "tasks": {"Test Stuff": {"output": {"status": 200, "json": {"body": "foo=bar"}}}},
    }
    post, log = (render_task_spec(t, context) for t in native["tasks"])
    assert post["method"] == "POST"
    assert post["url"] == "http://172.17.0.1:8000/some-endpoint"
    assert post["headers"] == {"Content-Type": "application/data"}
    assert post["body"] == "foo=bar"
    assert log["message"] == "foo=bar for bar"


def test_go_field_names_and_lowercase_keys_are_the_same_and_last_wins() -> None:
    upper = {
        "Name": "w",
        "Steps": [{"Name": "s", "Type": "log", "Context": {"message": "hi"}, "Register": ""}],
        "Variables": {"a": "1"},
    }
    mixed = {"NAME": "ignored", "name": "w", "STEPS": upper["Steps"], "variables": {"a": "1"}}
    assert to_native(upper) == to_native(mixed)


def test_redis_saved_steps_with_run_fields_are_accepted() -> None:
    step = {
        "Name": "s",
        "Type": "log",
        "Context": {"message": "x"},
        "Register": "",
        "Duration": "",
        "End": "",
        "ErrorMessage": "",
        "Failed": False,
        "Start": "",
        "UUID": "",
    }
    assert to_native({"Name": "w", "Steps": [step]})["tasks"][0]["message"] == "x"


def test_custom_step_types_call_the_handler_with_the_context() -> None:
    doc = {
        "name": "mail",
        "steps": [
            {"name": "prices", "type": "get-financial", "context": {}, "register": "finance"},
            {
                "name": "send",
                "type": "send-email",
                "context": {"to": "{{.Runtime.to}}", "body": "{{.finance.price}}"},
            },
        ],
    }
    native = to_native(doc)
    assert native["tasks"][0] == {
        "name": "prices",
        "kind": "python",
        "handler": "get-financial",
        "args": {},
    }
    context = {
        "vars": {},
        "inputs": {"to": "ops@x"},
        "tasks": {"prices": {"output": {"price": 12}}},
    }
    send = render_task_spec(native["tasks"][1], context)
    assert send["args"] == {"to": "ops@x", "body": 12}


def test_get_from_web_reads_the_json_body() -> None:
    doc = {
        "name": "w",
        "steps": [
            {
                "name": "a",
                "type": "get-from-web",
                "context": {"url": "http://h/x"},
                "register": "resp",
            },
            {"name": "b", "type": "log", "context": {"message": "{{.resp.Host}}"}},
        ],
    }
    native = to_native(doc)
    assert native["tasks"][0]["method"] == "GET"
    ctx = {"vars": {}, "inputs": {}, "tasks": {"a": {"output": {"json": {"Host": "h1"}}}}}
    assert render_task_spec(native["tasks"][1], ctx)["message"] == "h1"


def test_variables_are_plain_strings_even_with_braces() -> None:
    native = to_native({"name": "w", "variables": {"t": "{{ not jinja }}"}, "steps": []})
    from treadle.model.templating import render_value

    assert render_value(native["vars"], {}) == {"t": "{{ not jinja }}"}


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "JSON object"),
        ({"steps": []}, "Name is missing"),
        ({"name": "w", "steps": {}}, "Steps must be a list"),
        ({"name": "w", "stpes": []}, "unknown key(s) 'stpes'"),
        ({"name": "w", "steps": [{"name": "s"}]}, "Type is missing"),
        ({"name": "w", "steps": [{"type": "log"}]}, "Name is missing"),
        (
            {"name": "w", "steps": [{"name": "s", "type": "log", "context": {"m": ["x"]}}]},
            "Context.m must be a string",
        ),
        ({"name": "w", "steps": [{"name": "s", "type": "log", "colour": 1}]}, "'colour'"),
        (
            {
                "name": "w",
                "steps": [
                    {"name": "s", "type": "log", "context": {"message": "{{.later.x}}"}},
                    {"name": "t", "type": "log", "register": "later"},
                ],
            },
            "not Defaults, Runtime or the Register of an earlier step",
        ),
        (
            {
                "name": "w",
                "steps": [
                    {"name": "s", "type": "log", "context": {"message": "{{if .Runtime.x}}"}}
                ],
            },
            "Context.message: missing {{end}}",
        ),
    ],
)
def test_bad_workflows_are_refused_with_the_reason(doc: Any, fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_native(doc)
    assert fragment in info.value.message


def test_duplicate_step_names_are_refused_by_the_native_check() -> None:
    doc = {"name": "w", "steps": [{"name": "s", "type": "log"}, {"name": "s", "type": "log"}]}
    with pytest.raises(DefinitionError, match="duplicate task names: s"):
        definition_from_document(to_native(doc))


def test_detection() -> None:
    assert looks_like({"Name": "x", "Steps": []})
    assert not looks_like({"name": "x", "tasks": [], "steps": []})
    assert not looks_like({"name": "x", "tasks": [{"name": "a", "kind": "noop"}]})
    assert compat.detect({"name": "x", "tasks": [{"name": "a", "kind": "noop"}]}) == "native"
    assert parse_workflow({"Name": "x", "Steps": []}).to_document()["Name"] == "x"
