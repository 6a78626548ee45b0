"""Oversized, deeply nested and bomb-shaped documents get a clear 4xx, quickly, and nothing
stored is harmed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from treadle.errors import DefinitionError
from treadle.model.parse import MAX_NODES, MAX_TASKS, expanded_size, load_document

YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: bomb
tasks: [{name: a, kind: log, message: "{{ vars }}"}]
"""


def _nested_json(levels: int) -> str:
    return '{"name": "deep", "tasks": [], "vars": {"x": ' + "[" * levels + "]" * levels + "}}"


CASES: list[tuple[str, str | bytes, dict[str, str], str]] = [
    ("billion laughs", BILLION_LAUGHS, YAML, "expands to more than"),
    ("self alias", "name: x\ntasks: []\nvars: &a [*a]\n", YAML, "expands to more than"),
    ("json 10k deep", _nested_json(10_000), JSON, "nested deeper"),
    ("json 100k deep", _nested_json(100_000), JSON, "nested deeper"),
    ("json 100 deep", _nested_json(100), JSON, "nested deeper"),
    ("yaml 10k deep", "name: x\ntasks: []\nvars: " + "[" * 10_000 + "]" * 10_000, YAML, "nested"),
    (
        "too many tasks",
        json.dumps(
            {
                "name": "many",
                "tasks": [
                    {"name": f"t{i}", "kind": "noop", "depends_on": []}
                    for i in range(MAX_TASKS + 1)
                ],
            }
        ),
        JSON,
        f"at most {MAX_TASKS}",
    ),
    ("huge integer", '{"name": "x", "tasks": [], "version": ' + "9" * 5000 + "}", JSON, "digits"),
    ("NaN", '{"name": "x", "tasks": [], "vars": {"a": NaN}}', JSON, "NaN"),
    ("yaml .nan", "name: x\ntasks: []\nvars: {a: .nan}\n", YAML, "NaN and Infinity"),
    ("python tag", "!!python/object/apply:os.system ['id']\n", YAML, "constructor"),
    ("not utf-8", b"name: \xff\xfe\ntasks: []\n", YAML, "not UTF-8"),
    ("NUL in name", '{"name": "x\\u0000y", "tasks": []}', JSON, "name"),
    ("lone surrogate", '{"name": "x\\ud800y", "tasks": []}', JSON, "name"),
    ("long name", json.dumps({"name": "n" * 100_000, "tasks": []}), JSON, "name"),
]


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in response.text
    return dict(body["error"])


async def test_hostile_definitions_get_a_clear_4xx(api: httpx.AsyncClient) -> None:
    keep = await api.post(
        "/api/v1/definitions", content="name: keep\ntasks: [{name: a, kind: noop}]\n", headers=YAML
    )
    assert keep.status_code == 201
    for label, body, headers, words in CASES:
        response = await api.post("/api/v1/definitions", content=body, headers=headers)
        assert response.status_code == 422, (label, response.status_code, response.text[:300])
        error = _error(response)
        assert error["code"] == "invalid_definition", label
        assert words in error["message"], (label, error["message"])
    # nothing stored was harmed, nothing hostile was stored
    names = [d["name"] for d in (await api.get("/api/v1/definitions")).json()["items"]]
    assert names == ["keep"]


async def test_hostile_run_bodies_get_a_clear_4xx(api: httpx.AsyncClient) -> None:
    deep_inputs = '{"definition": "x", "inputs": {"a": ' + "[" * 10_000 + "]" * 10_000 + "}}"
    huge_int = '{"definition": "x", "inputs": {"a": ' + "9" * 5000 + "}}"
    truncated = await api.post("/api/v1/runs", content='{"definition": ', headers=JSON)
    assert truncated.status_code == 422
    assert "JSON decode error" in _error(truncated)["message"]
    for body in (deep_inputs, huge_int):
        response = await api.post("/api/v1/runs", content=body, headers=JSON)
        assert response.status_code == 400, response.text[:300]
        error = _error(response)
        assert error["code"] == "invalid_request"
        assert "not valid JSON" in error["message"]
    inline = {
        "definition": {
            "name": "inline",
            "tasks": [{"name": "a", "kind": "noop"}],
            "vars": {"x": json.loads("[" * 70 + "]" * 70)},
        },
        "inputs": {},
    }
    response = await api.post("/api/v1/runs", json=inline)
    assert response.status_code == 422
    assert "nested deeper" in _error(response)["message"]


async def test_an_oversized_body_is_413(api: httpx.AsyncClient) -> None:
    body = "name: big\ntasks: []\nvars: {x: '" + "y" * 5_000_000 + "'}\n"
    response = await api.post("/api/v1/definitions", content=body, headers=YAML)
    assert response.status_code == 413
    assert _error(response)["code"] == "too_large"


def test_expanded_size_counts_aliases_without_expanding() -> None:
    leaf = ["x"] * 9
    level = leaf
    for _ in range(8):
        level = [level] * 9  # 9**9 values once expanded, 9 distinct lists here
    assert expanded_size(level, MAX_NODES) > MAX_NODES
    assert expanded_size({"a": [1, 2, {"b": [3]}]}, MAX_NODES) == 7  # 3 containers, 4 scalars
    assert expanded_size("text", MAX_NODES) == 1


@pytest.mark.parametrize("levels", [1_000, 10_000])
def test_load_document_refuses_deep_flow_yaml(levels: int) -> None:
    with pytest.raises(DefinitionError, match="nested deeper"):
        load_document("x: " + "{a: " * levels + "1" + "}" * levels)


def test_brackets_inside_ordinary_documents_are_fine() -> None:
    text = "name: ok\ntasks:\n" + "".join(
        f"  - {{name: t{i}, kind: log, message: '[x] {{{{ {i} }}}}'}}\n" for i in range(300)
    )
    assert len(load_document(text)["tasks"]) == 300
