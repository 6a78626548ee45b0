"""Code-first workflows build the same native document as YAML."""

from __future__ import annotations

import pytest

import treadle
from treadle.model.parse import definition_from_document, load_document
from treadle.worker.handlers import get_handler, unregister

YAML = """
name: nightly-report
version: 3
description: Count rows and report them.
inputs:
  day: {type: string, required: true}
  limit: {type: integer, default: 10}
tasks:
  - name: fetch
    kind: http
    url: "http://127.0.0.1:9000/rows?day={{ inputs.day }}"
    retry: {max_attempts: 4, backoff: exponential, initial: 1}
    timeout: 30
  - name: count
    kind: shell
    command: ["python3", "-c", "print(3)"]
    depends_on: []
  - name: pause
    kind: sleep
    seconds: 0.5
    depends_on: [fetch]
  - name: summarize
    kind: python
    handler: summarize_rows
    depends_on: [fetch]
    args:
      rows: "{{ tasks.fetch.output.json }}"
      limit: "{{ inputs.limit }}"
  - name: report
    kind: log
    message: "{{ tasks.count.output.json }} rows for {{ inputs.day }}"
    depends_on: [count, pause, summarize]
"""


@pytest.fixture
def summarize_rows() -> object:
    @treadle.task(name="summarize_rows")
    def summarize(rows: list[int], limit: int) -> int:
        return min(len(rows), limit)

    yield summarize
    unregister("summarize_rows")


def test_code_first_equals_yaml(summarize_rows: treadle.workflows.TaskFunction) -> None:
    @treadle.workflow(name="nightly-report", version=3)
    def nightly(day: str, limit: int = 10) -> None:
        """Count rows and report them."""
        rows = treadle.http(
            f"http://127.0.0.1:9000/rows?day={day}",
            name="fetch",
            retry={"max_attempts": 4, "backoff": "exponential", "initial": 1},
            timeout=30,
        )
        count = treadle.shell(["python3", "-c", "print(3)"], name="count", depends_on=[])
        pause = treadle.sleep(0.5, name="pause", depends_on=[rows])
        total = summarize_rows.with_options(name="summarize")(rows=rows.output.json, limit=limit)
        treadle.log(f"{count.output.json} rows for {day}", name="report", depends_on=[pause, total])

    from_yaml = definition_from_document(load_document(YAML)).to_document()
    assert nightly.to_document() == from_yaml


def test_data_flow_makes_dependencies() -> None:
    @treadle.workflow
    def flow(n: int) -> None:
        a = treadle.shell(["echo", "a"])
        b = treadle.shell(["echo", f"{n}"], depends_on=[])
        treadle.log(f"{a.output.stdout} and {b['stdout']}")

    doc = flow.to_document()
    assert doc["name"] == "flow"
    names = [t["name"] for t in doc["tasks"]]
    assert names == ["shell", "shell-2", "log"]
    deps = definition_from_document(doc).dependencies()
    assert deps == {"shell": [], "shell-2": [], "log": ["shell", "shell-2"]}
    assert doc["tasks"][2]["message"] == (
        "{{ tasks.shell.output.stdout }} and {{ tasks['shell-2'].output.stdout }}"
    )


def test_whole_ref_keeps_native_type_template() -> None:
    @treadle.workflow(name="pass-through")
    def flow(numbers: list[int]) -> None:
        first = treadle.workflows.python("h", {"values": numbers})
        treadle.workflows.python("h", {"result": first}, name="second")

    tasks = flow.to_document()["tasks"]
    assert tasks[0]["args"] == {"values": "{{ inputs.numbers }}"}
    assert tasks[1]["args"] == {"result": "{{ tasks.h.output }}"}
    assert "depends_on" not in tasks[1]  # the previous task, implicit


def test_task_function_outside_a_workflow_is_the_plain_function() -> None:
    @treadle.task(name="double_it", retry=2)
    def double(x: int) -> int:
        return 2 * x

    try:
        assert double(4) == 8
        assert get_handler("double_it").func is double.func
        assert double.__name__ == "double"
    finally:
        unregister("double_it")


def test_builders_outside_a_workflow_fail_clearly() -> None:
    with pytest.raises(RuntimeError, match=r"inside a @treadle\.workflow"):
        treadle.shell(["true"])


def test_python_if_on_a_ref_is_refused() -> None:
    @treadle.workflow
    def flow(flag: bool) -> None:
        if flag:
            treadle.noop()

    with pytest.raises(TypeError, match="if_="):
        flow.to_document()


def test_invalid_options_are_named() -> None:
    @treadle.workflow
    def flow() -> None:
        treadle.noop(retries=3)

    with pytest.raises(TypeError, match="retries"):
        flow.to_document()


def test_duplicate_names_and_unknown_dependencies() -> None:
    @treadle.workflow
    def dup() -> None:
        treadle.noop(name="a")
        treadle.noop(name="a")

    @treadle.workflow
    def unknown() -> None:
        treadle.noop(name="a", depends_on=["zzz"])

    with pytest.raises(ValueError, match="already has a task named 'a'"):
        dup.to_document()
    with pytest.raises(ValueError, match="unknown task 'zzz'"):
        unknown.to_document()


def test_names_shadowed_by_dict_methods_use_subscripts() -> None:
    @treadle.workflow
    def flow(values: list[int], items: dict[str, int]) -> None:
        treadle.workflows.python("h", {"v": values, "i": items})

    args = flow.to_document()["tasks"][0]["args"]
    assert args == {"v": "{{ inputs['values'] }}", "i": "{{ inputs['items'] }}"}
