"""Mender workflow documents -> native definitions (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from treadle import compat
from treadle.compat.mender.translate import looks_like, required_inputs, to_native
from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document
from treadle.model.templating import evaluate_condition, render_task_spec

# The sample workflow of Mender's README, verbatim.
README_WORKFLOW = r"""{
    "name": "decommission_device",
    "description": "Removes device info from all services.",
    "version": 4,
    "tasks": [
        {
            "name": "delete_device_inventory",
            "type": "http",
            "http": {
                "uri": "http://www.mocky.io/v2/5de377e13000006800e9c9c2?mocky-delay=2000ms",
                "method": "PUT",
                "payload": "{\"device_id\": \"${workflow.input.device_id}\"}",
                "headers": {
                    "X-MEN-RequestID": "${workflow.input.request_id}",
                    "Authorization": "${workflow.input.authorization}"
                },
                "connectionTimeOut": 1000,
                "readTimeOut": 1000
            }
        }
    ],
    "inputParameters": [
        "device_id",
        "request_id",
        "authorization"
    ],
    "schemaVersion": 1
}"""


def _ctx(inputs: dict[str, Any], tasks: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"inputs": inputs, "vars": {}, "tasks": tasks or {}}


def test_readme_workflow() -> None:
    doc = json.loads(README_WORKFLOW)
    assert compat.detect(doc) == "mender"
    native = to_native(doc)
    definition = definition_from_document(native)
    assert (definition.name, definition.version) == ("decommission_device", 4)
    assert definition.description == "Removes device info from all services."
    assert required_inputs(native) == ["device_id", "request_id", "authorization"]
    task = render_task_spec(
        native["tasks"][0], _ctx({"device_id": "d1", "request_id": "r1", "authorization": "B"})
    )
    assert task["method"] == "PUT"
    assert task["url"].endswith("?mocky-delay=2000ms")
    assert json.loads(task["body"]) == {"device_id": "d1"}
    assert task["headers"] == {"X-MEN-RequestID": "r1", "Authorization": "B"}
    assert (task["connect_timeout"], task["read_timeout"]) == (1.0, 1.0)  # milliseconds
    assert task["accept"] == ["1xx", "2xx", "3xx"]


@pytest.mark.parametrize(
    ("value", "text"),
    [("s", "s"), (3, "3"), (True, "true"), ([1, "b"], "1,b"), ({"k": 1}, '{"k": 1}'), (None, "")],
)
def test_inputs_become_text_as_mender_converts_them(value: Any, text: str) -> None:
    doc = {
        "name": "w",
        "tasks": [
            {"name": "t", "type": "cli", "cli": {"command": ["echo", "${workflow.input.x}"]}}
        ],
    }
    native = to_native(doc)
    assert render_task_spec(native["tasks"][0], _ctx({"x": value}))["command"] == ["echo", text]


def test_defaults_encodings_env_and_earlier_task_json() -> None:
    doc = {
        "name": "w",
        "tasks": [
            {"name": "first", "type": "http", "http": {"uri": "http://h/a", "method": "get"}},
            {
                "name": "second",
                "type": "HTTP",  # the first Mender version spelt it in capitals
                "http": {
                    "uri": "${env.BASE|http://fallback}/d/${encoding=url;workflow.input.id}",
                    "method": "POST",
                    "json": {
                        "id": "${workflow.input.id}",
                        "n": "${workflow.input.n}",
                        "got": "${first.json.items.[1].name}",
                        "o": "${workflow.input.o|none}",
                    },
                    "statusCodes": [200, 201],
                },
                "retries": 2,
                "retryDelaySeconds": 5,
            },
        ],
        "optionalParameters": ["o"],
    }
    native = to_native(doc, environ={"BASE": "http://svc:8080"})
    definition_from_document(native)
    second = native["tasks"][1]
    assert second["retry"] == {"max_attempts": 3, "backoff": "fixed", "initial": 5}
    assert second["accept"] == [200, 201]
    earlier = {"first": {"output": {"json": {"items": [{"name": "a"}, {"name": "b"}]}}}}
    rendered = render_task_spec(second, _ctx({"id": "a b/c", "n": 7, "o": None}, earlier))
    assert rendered["url"] == "http://svc:8080/d/a%20b/c"
    # A JSON string that is exactly one input keeps the input's JSON type.
    assert rendered["json"] == {"id": "a b/c", "n": 7, "got": "b", "o": "none"}
    assert native["inputs"]["o"] == {"required": False}
    without_env = to_native(doc, environ={})
    assert (
        render_task_spec(without_env["tasks"][1], _ctx({"id": "x", "n": 1, "o": None}, earlier))[
            "url"
        ]
        == "http://fallback/d/x"
    )


def test_requires_skips_when_a_value_is_empty() -> None:
    doc = {
        "name": "w",
        "tasks": [
            {
                "name": "t",
                "type": "cli",
                "requires": ["${workflow.input.a}"],
                "cli": {"command": ["true"]},
            }
        ],
    }
    condition = to_native(doc)["tasks"][0]["if"]
    assert evaluate_condition(condition, _ctx({"a": "x"})) is True
    assert evaluate_condition(condition, _ctx({"a": ""})) is False
    assert evaluate_condition(condition, _ctx({"a": None})) is False


def test_formdata_is_url_encoded_after_substitution() -> None:
    doc = {
        "name": "w",
        "tasks": [
            {
                "name": "t",
                "type": "http",
                "http": {
                    "uri": "http://h",
                    "method": "POST",
                    "formdata": {"a b": "${workflow.input.v}", "c": "1"},
                },
            }
        ],
    }
    task = render_task_spec(to_native(doc)["tasks"][0], _ctx({"v": "x&y=z"}))
    assert task["body"] == "a%20b=x%26y%3Dz&c=1"
    assert task["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_cli_timeout_defaults_to_four_hours() -> None:
    doc = {"name": "w", "tasks": [{"name": "t", "type": "cli", "cli": {"command": ["ls"]}}]}
    assert to_native(doc)["tasks"][0]["timeout"] == 4 * 3600


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"tasks": []}, "Workflow missing name"),
        ({"name": "w", "tasks": []}, "tasks must be a non-empty list"),
        ({"name": "w", "tasks": [{"name": "t", "type": "smtp", "smtp": {}}]}, "not supported"),
        ({"name": "w", "tasks": [{"name": "t", "type": "http"}]}, "type must be http or cli"),
        (
            {"name": "w", "tasks": [{"name": "t", "type": "http", "http": {"method": "GET"}}]},
            "uri is missing",
        ),
        (
            {"name": "w", "tasks": [{"name": "t", "type": "cli", "cli": {"command": "ls"}}]},
            "non-empty list",
        ),
        (
            {"name": "w", "tasks": [{"name": "t", "type": "http", "http": {"uri": "${x.y}"}}]},
            "cannot resolve ${x.y}",
        ),
        (
            {
                "name": "w",
                "tasks": [
                    {
                        "name": "t",
                        "type": "http",
                        "http": {"uri": "${encoding=gzip;workflow.input.a}"},
                    }
                ],
            },
            "encoding must be url, html or plain",
        ),
        (
            {
                "name": "w",
                "tasks": [{"name": "t", "type": "http", "http": {"uri": "h", "urll": 1}}],
            },
            "unknown key(s) 'urll'",
        ),
        (
            {
                "name": "w",
                "inputParameters": "a",
                "tasks": [{"name": "t", "type": "cli", "cli": {"command": ["x"]}}],
            },
            "inputParameters must be a list",
        ),
    ],
)
def test_bad_workflows_are_refused_with_the_reason(doc: Any, fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_native(doc)
    assert fragment in info.value.message


def test_detection() -> None:
    assert looks_like({"name": "x", "inputParameters": []})
    assert looks_like({"name": "x", "tasks": [{"name": "a", "type": "cli"}]})
    assert not looks_like({"name": "x", "tasks": [{"name": "a", "kind": "shell", "type": "cli"}]})
    assert not looks_like({"name": "x", "tasks": [{"name": "a", "image": "alpine"}]})
