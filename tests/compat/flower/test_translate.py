"""Flower rows -> native definitions, and runs -> kr_task_stat rows (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from treadle.compat import detect
from treadle.compat.flower import programs, translate, views
from treadle.compat.flower.cli import read_csv
from treadle.engine.service import EngineService
from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document
from treadle.store.records import RunRecord

EXAMPLE_CSV = Path(__file__).parent / "examples" / "ms_task_definition.csv"


def example_rows() -> list[dict[str, Any]]:
    return read_csv(EXAMPLE_CSV)


def test_example_rows_become_a_chain_of_python_tasks() -> None:
    rows = example_rows()
    assert detect(rows) == "flower"
    native = translate.to_native(rows)
    definition = definition_from_document(native)
    assert definition.name == "example"
    assert [t.name for t in definition.tasks] == [
        "1-EchoRandomTimeSleep",
        "2-EchoParamTimeSleep",
        "3-HTTPPostRequest",
    ]
    assert definition.dependencies() == {
        "1-EchoRandomTimeSleep": [],
        "2-EchoParamTimeSleep": ["1-EchoRandomTimeSleep"],
        "3-HTTPPostRequest": ["2-EchoParamTimeSleep"],
    }
    assert native["tasks"][1]["handler"] == "EchoParamTimeSleep"
    assert native["tasks"][1]["args"] == {"SLEEP_TIME_SECOND": "3"}
    assert native["tasks"][2]["args"] == {
        "URL": "https://postman-echo.com/post",
        "BODY": '{"id": "test"}',
    }
    # Flower runs lower task_priority first, treadle higher priority first.
    assert {t["priority"] for t in native["tasks"]} == {-10}
    facts = native["vars"]["flower"]["tasks"]["2-EchoParamTimeSleep"]
    assert facts == {
        "task_seq": 2,
        "task_priority": 10,
        "program": "EchoParamTimeSleep",
        "parameters": {"SLEEP_TIME_SECOND": "3"},
    }


def test_rows_are_ordered_by_task_seq_and_wrapped_form_is_accepted() -> None:
    rows = [
        {"task_id": "w", "task_seq": "10", "program": "B", "task_priority": "-3"},
        {"task_id": "w", "task_seq": 2, "program": "A"},
    ]
    native = translate.to_native({"ms_task_definition": rows})
    assert [t["name"] for t in native["tasks"]] == ["2-A", "10-B"]
    assert [t["priority"] for t in native["tasks"]] == [0, 3]


def test_template_marks_in_parameters_stay_literal() -> None:
    row = {
        "task_id": "t",
        "task_seq": 1,
        "program": "P",
        "param1_key": "BODY",
        "param1_value": "{{ not a template }}",
    }
    native = translate.to_native([row])
    from treadle.model.templating import render_value

    assert render_value(native["tasks"][0]["args"], {}) == {"BODY": "{{ not a template }}"}


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"task_id": "a", "task_seq": 1}], "row 1.program: required"),
        ([{"task_id": "a", "task_seq": "x", "program": "P"}], "not a number"),
        (
            [{"task_id": "a", "task_seq": 1, "program": "P"}] * 2,
            "duplicate task_seq 1",
        ),
        (
            [
                {"task_id": "a", "task_seq": 1, "program": "P"},
                {"task_id": "b", "task_seq": 1, "program": "P"},
            ],
            "2 task_ids (a, b)",
        ),
        ([{"task_id": "a", "task_seq": 1, "program": "P", "task_priority": 25}], "-20 to 19"),
        ([{"task_id": "a", "task_seq": 1, "program": "P", "colour": 1}], "unknown column"),
        (
            [{"task_id": "a", "task_seq": 1, "program": "P", "param2_value": "v"}],
            "param2_value: given without param2_key",
        ),
        ([{"task_id": "a/b", "task_seq": 1, "program": "P"}], "task_id 'a/b'"),
        ({"rows": []}, "list of ms_task_definition rows"),
    ],
)
def test_bad_rows_name_the_problem(rows: Any, fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        translate.to_native(rows)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("task_status", "run_status", "code"),
    [
        ("pending", "running", 0),
        ("queued", "running", 0),
        ("running", "running", 1),
        ("paused", "paused", 2),
        ("failed", "failed", 2),  # Flower would have said 3 (finish): not copied
        ("completed", "failed", 3),
        ("cancelled", "failed", 0),  # blocked behind a failure: still waiting, as in Flower
        ("cancelled", "cancelled", 9),
        ("skipped", "completed", 9),
    ],
)
def test_exec_status(task_status: str, run_status: str, code: int) -> None:
    assert views.exec_status(task_status, run_status) == code


def test_flow_rows_of_a_fresh_run() -> None:
    native = translate.to_native(example_rows())
    model = definition_from_document(native)
    document = model.to_document()
    now = datetime.now(UTC)
    run = RunRecord("flow-1", "example", 1, document, "pending", {}, now, dialect="flower")
    tasks = EngineService.build_tasks(run.id, model, document, now)
    rows = views.flow_rows(run, tasks)
    assert [(r["task_exec_seq"], r["depends_task_exec_seq"]) for r in rows] == [
        (1, -1),
        (2, 1),
        (3, 2),
    ]
    assert [r["parameters"] for r in rows] == [
        {},
        {"SLEEP_TIME_SECOND": "3"},
        {"URL": "https://postman-echo.com/post", "BODY": '{"id": "test"}'},
    ]
    assert {r["task_id"] for r in rows} == {"example"}
    assert {r["exec_status"] for r in rows} == {0}
    assert {r["task_priority"] for r in rows} == {10}
    assert set(rows[0]) == set(views.COLUMNS)


async def test_builtin_programs_called_directly() -> None:
    assert (await programs.echo_param_time_sleep(SLEEP_TIME_SECOND="0"))["slept"] == 0
    with pytest.raises(ValueError, match="SLEEP_TIME_SECOND"):
        await programs.echo_param_time_sleep()
    with pytest.raises(ValueError, match="whole number"):
        await programs.echo_param_time_sleep(SLEEP_TIME_SECOND="soon")
    with pytest.raises(ValueError, match="URL"):
        await programs.http_post_request(BODY="{}")
    with pytest.raises(PermissionError):
        await programs.http_post_request(URL="http://169.254.169.254/latest", BODY="{}")
