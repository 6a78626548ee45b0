"""Igor jobs to native definitions."""

from __future__ import annotations

import pytest

from treadle.compat import detect
from treadle.compat.igor.translate import labels, looks_like, to_native
from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document

JOB = {
    "name": "my job/1",
    "layers": [
        {"name": "a/b", "priority": 0, "tasks": [{"type": "t", "name": "x", "args": "MQ=="}]},
        {
            "name": "later",
            "priority": 10,
            "paused_at": 5,
            "Tasks": [{"type": "t"}, {"type": "u", "name": "x", "retries": 2}],
        },
    ],
}


def test_translation_is_a_valid_native_definition() -> None:
    native = to_native(JOB)
    model = definition_from_document(native)
    assert [(la.name, la.priority, la.paused) for la in model.layers] == [
        ("a_b", 0, False),
        ("later", 10, True),
    ]
    first, second, third = native["tasks"]
    assert first["handler"] == "t" and first["args"] == {"args": "MQ=="}
    assert first["depends_on"] == [] and first["layer"] == "a_b" and first["description"] == "x"
    assert second["name"] == "later-0" and second["description"] == ""
    assert third["name"] == "x#2" and third["retry"] == {"max_attempts": 3}
    assert labels(JOB, native) == {
        "igor": {"name": "my job/1", "layers": {"a_b": "a/b", "later": "later"}}
    }


def test_detection() -> None:
    assert looks_like(JOB) and detect(JOB) == "igor"
    assert not looks_like({"name": "n", "tasks": [], "layers": []})


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"name": "j", "layers": []}, "no layers"),
        ({"layers": [{"tasks": [{"name": "n"}]}]}, "type is required"),
        ({"layers": [{"tasks": [{"type": "t", "args": "!!"}]}]}, "base64"),
        ({"layers": [{"tasks": [{"type": "t", "bogus": 1}]}]}, "bogus"),
        ({"layers": [{"priority": "high"}]}, "priority"),
        ({"layers": [{"tasks": [{"type": "t", "retries": -1}]}]}, "retries"),
    ],
)
def test_errors_name_the_problem(doc: dict[str, object], words: str) -> None:
    with pytest.raises(DefinitionError, match=words):
        to_native(doc)
