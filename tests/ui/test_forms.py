"""The start form: fields from an inputs schema, and typed values back from a submission."""

from __future__ import annotations

from treadle.ui.forms import build_fields, parse_submission

SCHEMA = {
    "day": {"type": "string", "required": True, "description": "Which day"},
    "limit": {"type": "integer", "default": 10},
    "ratio": {"type": "number"},
    "verbose": {"type": "boolean", "default": True},
    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
    "size": {"type": "integer", "enum": [1, 2, 3]},
    "tags": {"type": "array"},
    "extra": {"type": "object", "default": {"a": 1}},
    "anything": {},
}


def test_widgets_defaults_and_required_follow_the_schema() -> None:
    fields = {f.name: f for f in build_fields(SCHEMA)}
    assert fields["day"].widget == "text" and fields["day"].required
    assert fields["day"].description == "Which day"
    assert (fields["limit"].widget, fields["limit"].value) == ("integer", "10")
    assert fields["ratio"].widget == "number" and not fields["ratio"].required
    assert fields["verbose"].widget == "checkbox" and fields["verbose"].checked
    assert fields["mode"].widget == "select"
    assert fields["mode"].options == (('"fast"', "fast"), ('"slow"', "slow"))
    assert fields["mode"].value == '"slow"'
    assert fields["tags"].widget == "json"
    assert fields["extra"].value == '{"a": 1}'
    assert fields["anything"].type == "any" and fields["anything"].widget == "json"


def test_a_required_input_with_a_default_is_not_required_in_the_form() -> None:
    (field,) = build_fields({"x": {"type": "string", "required": True, "default": "d"}})
    assert not field.required


def test_submission_gives_typed_values_and_leaves_empty_optionals_out() -> None:
    form = {
        "day": "2025-01-31",
        "limit": " 25 ",
        "ratio": "",
        "mode": '"fast"',
        "size": "2",
        "tags": '["a", "b"]',
        "extra": "",
        "anything": "plain words",
    }
    inputs, errors = parse_submission(SCHEMA, form)
    assert errors == {}
    assert inputs == {
        "day": "2025-01-31",
        "limit": 25,
        "verbose": False,  # an unticked box is false
        "mode": "fast",
        "size": 2,
        "tags": ["a", "b"],
        "anything": "plain words",
    }


def test_each_bad_field_gets_its_own_message() -> None:
    form = {"day": "", "limit": "ten", "ratio": "x", "tags": "{", "extra": "[1]", "verbose": "true"}
    inputs, errors = parse_submission(SCHEMA, form)
    assert set(errors) == {"day", "limit", "ratio", "tags", "extra"}
    assert errors["day"] == "is required"
    assert "whole number" in errors["limit"]
    assert "JSON" in errors["tags"]
    assert "object" in errors["extra"]
    assert inputs["verbose"] is True


def test_resubmitted_values_are_shown_with_errors() -> None:
    fields = {f.name: f for f in build_fields(SCHEMA, {"limit": "ten"}, {"limit": "bad"})}
    assert fields["limit"].value == "ten" and fields["limit"].error == "bad"
    assert fields["verbose"].checked is False
