"""Tork documents -> native definitions (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from treadle.compat import detect
from treadle.compat.tork import translate
from treadle.errors import DefinitionError
from treadle.model.parse import definition_from_document, load_document

EXAMPLES = Path(__file__).parent / "examples"


def example(name: str) -> Any:
    return load_document((EXAMPLES / name).read_text())


def test_seed_examples_are_detected_as_tork() -> None:
    for name in ("hello.yaml", "convert.yaml", "transcode.yaml"):
        assert detect(example(name)) == "tork", name


def test_hello_without_container_kind_fails_clearly_at_run_time() -> None:
    native = translate.to_native(example("hello.yaml"))
    definition = definition_from_document(native)  # valid native definition
    (task,) = native["tasks"]
    if translate.container_kind_available():
        assert task["kind"] == "container"
        assert task["cmd"] == ["echo", "-n", "hello world"]
    else:
        assert task["kind"] == "python"
        assert task["handler"] == translate.NO_CONTAINER_HANDLER
        assert task["args"] == {"image": "ubuntu:mantic"}
    assert definition.name == "say hello"


def test_convert_maps_to_one_container_task_with_pre_post_and_volumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(translate, "container_kind_available", lambda: True)
    native = translate.to_native(example("convert.yaml"))
    (task,) = native["tasks"]
    assert task["kind"] == "container"
    assert task["image"] == "jrottenberg/ffmpeg:3.4-scratch"
    assert task["cmd"] == ["-i", "/tmp/input.ogv", "-t", "5", "/tmp/output.mp4"]
    assert task["volumes"] == ["/tmp"]
    assert [s["name"] for s in task["pre"]] == ["download the remote file"]
    assert task["pre"][0]["image"] == "alpine:3.18.3"
    assert task["pre"][0]["cmd"][0] == "wget"
    assert task["post"][0]["cmd"][:2] == ["wget", "--post-file=/tmp/output.mp4"]


def test_queue_is_kept() -> None:
    native = translate.to_native(example("transcode.yaml"))
    assert native["tasks"][0]["queue"] == "transcoding"


def test_task_without_image_runs_as_shell_chain_with_pre_and_post() -> None:
    native = translate.to_native(
        {
            "name": "build",
            "run": "make all",
            "env": {"MODE": 1},
            "pre": [{"name": "fetch", "cmd": ["git", "pull"]}],
            "post": [{"name": "tell", "run": "echo done"}],
            "retry": {"limit": 2, "initialDelay": "2s"},
            "timeout": "1m30s",
        }
    )
    definition_from_document(native)
    names = [t["name"] for t in native["tasks"]]
    assert names == ["build (pre 1: fetch)", "build", "build (post 1: tell)"]
    main = native["tasks"][1]
    assert main["command"] == "make all" and main["shell"] is True
    assert main["env"] == {"MODE": "1"}
    assert main["retry"] == {"max_attempts": 3, "backoff": "exponential", "initial": 2.0}
    assert main["timeout"] == 90.0
    assert native["tasks"][0]["command"] == ["git", "pull"]


def test_entrypoint_and_cmd_join_into_argv() -> None:
    native = translate.to_native({"name": "x", "entrypoint": ["sh", "-c"], "cmd": ["echo hi"]})
    assert native["tasks"][0]["command"] == ["sh", "-c", "echo hi"]


def test_job_with_inputs_and_vars_rewrites_expressions() -> None:
    native = translate.to_native(
        {
            "name": "hello job",
            "inputs": {"msg": "hi"},
            "tasks": [
                {"name": "t1", "var": "out1", "run": "echo -n {{ inputs.msg }}"},
                {"name": "t2", "run": "echo {{ tasks.out1 }} from {{ job.id }}"},
            ],
        }
    )
    definition_from_document(native)
    assert native["inputs"] == {"msg": {"type": "string", "default": "hi"}}
    assert native["tasks"][1]["command"] == (
        "echo {{ tasks['t1'].output.stdout }} from {{ run.id }}"
    )


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"name": "x"}, "needs an `image`, a `run` script or a `cmd`"),
        ({"name": "x", "run": "a", "cmd": ["b"]}, "either `cmd` or `run`"),
        ({"name": "x", "run": "a", "retry": {"limit": 11}}, "retry.limit: must be at most 10"),
        ({"name": "x", "run": "a", "retry": {"attempts": 2}}, "retry.attempts"),
        ({"name": "x", "run": "a", "queue": "x-private"}, "reserved queue"),
        ({"name": "x", "run": "a", "queue": "pending"}, "reserved queue"),
        ({"name": "x", "run": "a", "volumes": ["/tmp"]}, "needs an image"),
        ({"name": "x", "run": "a", "timeout": "soon"}, "timeout: not a duration"),
        ({"name": "x", "run": "a", "colour": "red"}, "unknown field(s) colour"),
        ({"name": "x", "cmd": "echo hi"}, "cmd: must be a list of strings"),
        ({"name": "j", "tasks": []}, "at least one task"),
        ({"name": "j", "tasks": [{"run": "a"}]}, "tasks[0].name"),
        ({"name": "j", "tasks": [{"name": "a", "each": {"list": "[1]"}, "run": "x"}]}, "each"),
        ({"tasks": [{"name": "a", "run": "x"}]}, "name: a Tork job needs a name"),
    ],
)
def test_bad_documents_name_the_problem(doc: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        translate.to_native(doc)
    assert fragment in info.value.message


def test_not_tork() -> None:
    assert not translate.looks_like({"name": "n", "tasks": [{"name": "a", "kind": "shell"}]})
    assert not translate.looks_like({"name": "m", "tasks": [{"name": "a", "type": "http"}]})
    assert not translate.looks_like([{"task_id": "x"}])


def test_names_are_made_acceptable() -> None:
    assert translate.definition_name("transcode: a/video!") == "transcode- a-video-"
    assert translate.task_name("a/b") == "a-b"
