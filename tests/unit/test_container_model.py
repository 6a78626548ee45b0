"""The native ``container`` task model: what it accepts and how it names what it rejects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from treadle.model.container import ContainerStep, ContainerTask


def test_tork_convert_shape_validates() -> None:
    task = ContainerTask.model_validate(
        {
            "name": "convert",
            "kind": "container",
            "image": "jrottenberg/ffmpeg:3.4-scratch",
            "cmd": ["-i", "/tmp/input.ogv", "-t", "5", "/tmp/output.mp4"],
            "volumes": ["/tmp"],
            "limits": {"cpus": 0.5, "memory": "256m", "pids": 64},
            "env": {"RETRIES": 3, "VERBOSE": True},
            "pre": [{"name": "download", "image": "alpine:3.18.3", "cmd": ["wget", "x"]}],
            "post": [{"name": "upload", "image": "alpine:3.18.3", "run": "wget --post-file x"}],
        }
    )
    assert task.volumes == ["/tmp"]
    assert task.env == {"RETRIES": "3", "VERBOSE": "true"}
    assert task.limits is not None and task.limits.memory == "256m"
    assert [step.name for step in task.pre + task.post] == ["download", "upload"]
    assert task.pull == "if-missing"
    assert task.network is None  # the worker's default ("none") applies


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cmd": ["true"], "run": "true"}, "either `cmd` or `run`"),
        ({"run": "   "}, "`run` must not be empty"),
        ({"env": {"1BAD": "x"}}, "invalid environment variable name"),
        ({"limits": {"memory": "lots"}}, "is not a size"),
        ({"limits": {"cpus": 0}}, "greater than 0"),
        ({"limits": {"pids": 0}}, "greater than or equal to 1"),
        ({"workdir": "relative"}, "must be an absolute path"),
        ({"mounts": [{"target": "/data"}]}, "needs an absolute `source`"),
        ({"mounts": [{"source": "/srv", "target": "data"}]}, "must be an absolute path"),
        ({"pull": "sometimes"}, "never"),
        ({"registry": {"username": "u"}}, "password"),
        ({"imagee": "typo"}, "imagee"),
    ],
)
def test_bad_steps_are_rejected_by_name(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as failed:
        ContainerStep.model_validate({"image": "alpine", **fields})
    assert message in str(failed.value)


def test_volumes_must_be_absolute_and_unique() -> None:
    base = {"name": "t", "kind": "container", "image": "alpine"}
    with pytest.raises(ValidationError, match="absolute container path"):
        ContainerTask.model_validate({**base, "volumes": ["tmp"]})
    with pytest.raises(ValidationError, match="unique"):
        ContainerTask.model_validate({**base, "volumes": ["/tmp", "/tmp"]})


def test_registry_password_is_not_shown() -> None:
    step = ContainerStep.model_validate(
        {"image": "private/app", "registry": {"username": "bot", "password": "s3cret"}}
    )
    assert "s3cret" not in repr(step)
