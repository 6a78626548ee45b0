"""ContainerRuntime against a real engine: Podman's Docker API, from scripts/setup-containers.sh.

The images are the offline busybox image the setup script builds, also tagged ubuntu:mantic and
alpine:3.18.3 so Tork's examples run as written. With CI set, an engine that cannot be set up
fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.services import run_setup_script
from treadle.runtime.base import AttemptContext, TaskFailed
from treadle.runtime.container import ContainerRuntime
from treadle.runtime.container_engine import LABEL_OWNER, LABEL_RUN, resolve_host

# The first test also pays for the setup script (apt-get, image build) on a fresh machine.
pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-containers.sh"
IMAGE = "treadle-test/busybox:latest"


@pytest.fixture(scope="session")
def engine_host() -> str:
    """Run the setup script once; fail in CI, skip elsewhere, when no engine can be had."""
    run_setup_script(SETUP, "container engine")
    return resolve_host({})


@pytest.fixture(scope="session")
def docker_client(engine_host: str) -> Iterator[docker.DockerClient]:
    """An independent client to look at what the runtime left on the engine."""
    client = docker.DockerClient(base_url=engine_host, version="1.41", timeout=60)
    yield client
    client.close()


@pytest.fixture
async def runtime(engine_host: str) -> AsyncIterator[ContainerRuntime]:
    rt = ContainerRuntime({"container_host": engine_host, "container_stop_grace": 1})
    yield rt
    await rt.cleanup_all()
    rt.close()


class Ctx:
    """An AttemptContext factory with a fresh run id and a log recorder."""

    def __init__(self, **settings: Any) -> None:
        self.run_id = f"run-{uuid.uuid4().hex[:12]}"
        self.logs: list[tuple[str, str]] = []
        self.settings = settings
        self.count = 0

    def __call__(self, name: str = "task") -> AttemptContext:
        self.count += 1
        return AttemptContext(
            run_id=self.run_id,
            task_id=f"{self.run_id}-t{self.count}",
            task_name=name,
            attempt_id=f"{self.run_id}-a{self.count}",
            attempt_number=1,
            log=lambda stream, text: self.logs.append((stream, text)),
            settings=self.settings,
        )

    def text(self, stream: str | None = None) -> str:
        return "".join(t for s, t in self.logs if stream is None or s == stream)


def leftovers(client: docker.DockerClient, label: str, value: str) -> tuple[list[Any], list[Any]]:
    filters = {"label": f"{label}={value}"}
    return client.containers.list(all=True, filters=filters), client.volumes.list(filters=filters)


def assert_clean(client: docker.DockerClient, run_id: str) -> None:
    containers, volumes = leftovers(client, LABEL_RUN, run_id)
    assert containers == [], f"containers left behind: {[c.id[:12] for c in containers]}"
    assert volumes == [], f"volumes left behind: {[v.name for v in volumes]}"


async def wait_for_running(client: docker.DockerClient, run_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = await asyncio.to_thread(
            client.containers.list, filters={"label": f"{LABEL_RUN}={run_id}", "status": "running"}
        )
        if running:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the container never started running")


# --- Tork's examples ---------------------------------------------------------------------------


async def test_tork_hello_world(runtime: ContainerRuntime, docker_client: Any) -> None:
    ctx = Ctx()
    spec = {"name": "say hello", "image": "ubuntu:mantic", "cmd": ["echo", "-n", "hello world"]}
    output = await runtime.run(spec, ctx())
    assert output["result"] == "hello world"
    assert output["exit_code"] == 0
    assert output["oom_killed"] is False
    assert ctx.text("stdout") == "hello world"
    assert_clean(docker_client, ctx.run_id)


async def test_tork_convert_example_shares_volume_pre_main_post(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    # Tork's convert.yaml with busybox commands standing in for wget and ffmpeg (no network).
    ctx = Ctx()
    spec = {
        "name": "convert the first 5 seconds of a video",
        "image": IMAGE,
        "entrypoint": ["sh", "-c", 'tr a-z A-Z < "$0" > "$1"'],
        "cmd": ["/tmp/input.ogv", "/tmp/output.mp4"],
        "volumes": ["/tmp"],
        "pre": [
            {
                "name": "download the remote file",
                "image": "alpine:3.18.3",
                "cmd": ["sh", "-c", "echo big buck bunny > /tmp/input.ogv"],
            }
        ],
        "post": [
            {
                "name": "upload the converted file",
                "image": "alpine:3.18.3",
                "cmd": [
                    "sh",
                    "-c",
                    'echo "uploaded $(cat /tmp/output.mp4) after $TREADLE_MAIN_STATUS"',
                ],
            }
        ],
    }
    output = await runtime.run(spec, ctx())
    assert "uploaded BIG BUCK BUNNY after completed" in ctx.text("stdout")
    assert [(s["role"], s["name"], s["exit_code"]) for s in output["steps"]] == [
        ("pre", "download the remote file", 0),
        ("post", "upload the converted file", 0),
    ]
    assert_clean(docker_client, ctx.run_id)


async def test_post_runs_after_failed_main_and_sees_status(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    spec = {
        "image": IMAGE,
        "run": "echo partial > /work/out; exit 4",
        "volumes": ["/work"],
        "post": [{"image": IMAGE, "run": 'echo "post saw $(cat /work/out) $TREADLE_MAIN_STATUS"'}],
    }
    with pytest.raises(TaskFailed) as failed:
        await runtime.run(spec, ctx())
    assert failed.value.exit_code == 4
    assert "post saw partial failed" in ctx.text("stdout")
    assert_clean(docker_client, ctx.run_id)


async def test_failing_pre_step_stops_the_task(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    spec = {
        "image": IMAGE,
        "run": "echo main ran",
        "pre": [{"name": "fetch", "image": IMAGE, "run": "echo no input >&2; exit 2"}],
    }
    with pytest.raises(TaskFailed) as failed:
        await runtime.run(spec, ctx())
    assert failed.value.exit_code == 2
    assert "pre step 'fetch' exited with code 2: no input" in failed.value.message
    assert "main ran" not in ctx.text()
    assert_clean(docker_client, ctx.run_id)


# --- command, environment, output ---------------------------------------------------------------


async def test_run_script_uses_the_image_shell(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    script = "set -e\nfor word in alpha beta; do echo $word; done | tr a-z A-Z\necho done >&2\n"
    output = await runtime.run({"image": IMAGE, "run": script}, ctx())
    assert output["stdout"] == "ALPHA\nBETA\n"
    assert output["stderr"] == "done\n"


async def test_env_workdir_and_treadle_variables(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    spec = {
        "image": IMAGE,
        "run": 'echo "$GREETING|$COUNT|$(pwd)|$TREADLE_TASK_NAME|$TREADLE_RUN_ID"',
        "env": {"GREETING": "hi there", "COUNT": 3},
        "workdir": "/tmp",
    }
    output = await runtime.run(spec, ctx("envtask"))
    assert output["stdout"] == f"hi there|3|/tmp|envtask|{ctx.run_id}\n"


async def test_user_runs_unprivileged_and_can_write_outputs(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    spec = {
        "image": IMAGE,
        "run": 'id -u; echo "{\\"uid\\": $(id -u)}" > "$TREADLE_OUTPUTS"; echo not json',
        "user": "65534:65534",
    }
    output = await runtime.run(spec, ctx())
    assert output["stdout"].splitlines()[0] == "65534"
    assert output["json"] == {"uid": 65534}


async def test_json_falls_back_to_last_stdout_line(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    output = await runtime.run({"image": IMAGE, "run": "echo working; echo '{\"n\": 3}'"}, ctx())
    assert output["json"] == {"n": 3}
    output = await runtime.run({"image": IMAGE, "cmd": ["echo", "plain"]}, ctx())
    assert output["json"] is None


async def test_result_is_capped_by_setting(runtime: ContainerRuntime) -> None:
    ctx = Ctx(container_result_limit=1024)
    output = await runtime.run(
        {"image": IMAGE, "run": "head -c 5000 /dev/zero | tr '\\0' x"}, ctx()
    )
    assert output["result"].startswith("x" * 1024)
    assert "truncated 3976 characters" in output["result"]
    assert output["stdout"] == "x" * 5000  # stdout keeps the larger output_limit


async def test_exit_code_failure_keeps_output(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    with pytest.raises(TaskFailed) as failed:
        await runtime.run({"image": IMAGE, "run": "echo some; echo boom >&2; exit 3"}, ctx())
    assert failed.value.exit_code == 3
    assert failed.value.error_type == "ExitCode"
    assert failed.value.message == "container exited with code 3: boom"
    assert failed.value.output["stdout"] == "some\n"
    assert failed.value.output["oom_killed"] is False
    assert_clean(docker_client, ctx.run_id)


async def test_logs_stream_while_the_container_runs(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    task = asyncio.create_task(
        runtime.run({"image": IMAGE, "run": "echo first; sleep 3; echo second"}, ctx())
    )
    deadline = time.monotonic() + 15
    while "first" not in ctx.text("stdout"):
        assert time.monotonic() < deadline, "no output arrived while the container ran"
        assert not task.done(), "the task ended before its first line was seen"
        await asyncio.sleep(0.05)
    assert not task.done()
    assert "second" not in ctx.text("stdout")
    output = await task
    assert output["stdout"] == "first\nsecond\n"


# --- limits and isolation -----------------------------------------------------------------------


async def test_memory_limit_is_enforced_and_reported_as_oom(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    # tail buffers /dev/zero forever looking for a newline: memory grows until the limit.
    spec = {"image": IMAGE, "cmd": ["tail", "/dev/zero"], "limits": {"memory": "32m"}}
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failed:
        await runtime.run(spec, ctx())
    assert time.monotonic() - started < 30
    assert failed.value.error_type == "OutOfMemory"
    assert "exceeded its memory limit (32m)" in failed.value.message
    assert failed.value.output["oom_killed"] is True
    assert_clean(docker_client, ctx.run_id)
    # The same limit with a modest allocation passes: the limit is not a blanket kill.
    small = {
        "image": IMAGE,
        "run": "head -c 4000000 /dev/zero | wc -c",
        "limits": {"memory": "32m"},
    }
    output = await runtime.run(small, ctx())
    assert output["stdout"].strip() == "4000000"
    assert output["oom_killed"] is False


async def test_pids_limit_caps_processes(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    # 20 background sleeps; the count uses a glob, a shell builtin that needs no fork.
    script = "for i in $(seq 1 20); do sleep 30 & done; set -- /proc/[0-9]*; echo $#"
    free = await runtime.run({"image": IMAGE, "run": script}, ctx())
    assert int(free["stdout"]) >= 21
    with pytest.raises(TaskFailed) as failed:
        await runtime.run({"image": IMAGE, "run": script, "limits": {"pids": 8}}, ctx())
    assert "can't fork" in failed.value.message
    assert failed.value.output["stdout"] == ""


async def test_cpu_limit_sets_the_quota(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    script = "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
    output = await runtime.run({"image": IMAGE, "run": script, "limits": {"cpus": 0.5}}, ctx())
    quota, period = (int(v) for v in output["stdout"].split())
    assert quota / period == pytest.approx(0.5)


async def test_network_is_none_unless_opted_in(runtime: ContainerRuntime) -> None:
    ctx = Ctx()
    script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
    default = await runtime.run({"image": IMAGE, "run": script}, ctx())
    assert default["stdout"].split() == ["lo"]
    opted = await runtime.run({"image": IMAGE, "run": script, "network": "host"}, ctx())
    assert set(opted["stdout"].split()) > {"lo"}
    queue_default = Ctx(container_network="host")
    by_setting = await runtime.run({"image": IMAGE, "run": script}, queue_default())
    assert set(by_setting["stdout"].split()) > {"lo"}


async def test_bind_mounts_only_from_the_allow_list(
    runtime: ContainerRuntime, tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("from the host\n")
    spec = {
        "image": IMAGE,
        "cmd": ["cat", "/data/data.txt"],
        "mounts": [{"source": str(tmp_path), "target": "/data", "readonly": True}],
    }
    with pytest.raises(TaskFailed) as failed:
        await runtime.run(spec, Ctx()())
    assert failed.value.error_type == "MountNotAllowed"
    assert str(tmp_path) in failed.value.message
    with pytest.raises(TaskFailed):
        await runtime.run(spec, Ctx(container_bind_allow=[str(tmp_path / "elsewhere")])())
    output = await runtime.run(spec, Ctx(container_bind_allow=[str(tmp_path.parent)])())
    assert output["stdout"] == "from the host\n"


async def test_invalid_spec_is_a_clear_error(runtime: ContainerRuntime) -> None:
    with pytest.raises(TaskFailed) as failed:
        await runtime.run({"image": IMAGE, "cmd": ["true"], "run": "true"}, Ctx()())
    assert failed.value.error_type == "InvalidSpec"
    assert "either `cmd` or `run`" in failed.value.message
    assert failed.value.retryable is False


# --- timeout, kill, cleanup ---------------------------------------------------------------------


async def test_timeout_stops_and_removes_the_container(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    spec = {"image": IMAGE, "cmd": ["sleep", "300"], "volumes": ["/scratch"]}
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runtime.run(spec, ctx()), 2)
    assert time.monotonic() - started < 15
    assert_clean(docker_client, ctx.run_id)


async def test_kill_cancels_and_removes_the_container(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    spec = {"image": IMAGE, "run": "trap 'exit 0' TERM; sleep 300 & wait", "volumes": ["/scratch"]}
    task = asyncio.create_task(runtime.run(spec, ctx()))
    await wait_for_running(docker_client, ctx.run_id)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_clean(docker_client, ctx.run_id)


async def test_cleanup_all_removes_what_this_worker_runs(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    task = asyncio.create_task(
        runtime.run({"image": IMAGE, "cmd": ["sleep", "300"], "volumes": ["/v"]}, ctx())
    )
    await wait_for_running(docker_client, ctx.run_id)
    assert len(leftovers(docker_client, LABEL_RUN, ctx.run_id)[1]) >= 1  # /v and its like
    containers, _ = await runtime.cleanup_all()
    assert containers == 1
    # The volume is removed either by cleanup_all or by the interrupted run's own cleanup,
    # whichever reaches it first; the checks below see that it is gone.
    with pytest.raises(TaskFailed) as failed:
        await asyncio.wait_for(task, 30)
    assert "removed" in failed.value.message or failed.value.exit_code == 137
    assert_clean(docker_client, ctx.run_id)
    assert leftovers(docker_client, LABEL_OWNER, runtime.owner) == ([], [])


async def test_many_runs_leave_nothing_behind(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    gate = asyncio.Semaphore(4)
    outcomes: list[str] = []

    async def one(index: int) -> None:
        if index % 10 == 3:
            spec: dict[str, Any] = {"image": IMAGE, "run": f"exit {index % 7 + 1}"}
        elif index % 10 == 7:
            spec = {
                "image": IMAGE,
                "run": "cat /v/f",
                "volumes": ["/v"],
                "pre": [{"image": IMAGE, "run": f"echo {index} > /v/f"}],
            }
        else:
            spec = {"image": IMAGE, "cmd": ["echo", str(index)]}
        async with gate:
            try:
                output = await runtime.run(spec, ctx(f"n{index}"))
                outcomes.append(output["stdout"].strip())
            except TaskFailed:
                outcomes.append("failed")

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(100)))
    elapsed = time.monotonic() - started
    assert outcomes.count("failed") == 10
    assert sorted(int(o) for o in outcomes if o != "failed") == [
        i for i in range(100) if i % 10 != 3
    ]
    assert_clean(docker_client, ctx.run_id)
    assert elapsed < 120


# --- images and engine --------------------------------------------------------------------------


async def test_missing_image_with_pull_never_fails_clearly(
    runtime: ContainerRuntime, docker_client: Any
) -> None:
    ctx = Ctx()
    spec = {"image": "treadle-test/absent:1", "cmd": ["true"], "pull": "never"}
    with pytest.raises(TaskFailed) as failed:
        await runtime.run(spec, ctx())
    assert failed.value.error_type == "ImageNotFound"
    assert failed.value.retryable is False
    assert "'treadle-test/absent:1' is not present" in failed.value.message
    assert "'never'" in failed.value.message
    assert_clean(docker_client, ctx.run_id)


async def test_missing_image_that_cannot_be_pulled_fails_clearly(runtime: ContainerRuntime) -> None:
    spec = {"image": "treadle-test/absent:1", "cmd": ["true"]}  # pull: if-missing
    with pytest.raises(TaskFailed) as failed:
        await asyncio.wait_for(runtime.run(spec, Ctx()()), 60)
    assert failed.value.error_type == "ImagePullFailed"
    assert "could not pull image 'treadle-test/absent:1'" in failed.value.message


@pytest.mark.parametrize(
    "host", ["unix:///nonexistent/treadle/docker.sock", "tcp://127.0.0.1:9"], ids=["socket", "tcp"]
)
async def test_unreachable_engine_refuses_quickly(host: str) -> None:
    rt = ContainerRuntime({"container_host": host})
    reason = await rt.available()
    assert reason
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failed:
        await rt.run({"image": IMAGE, "cmd": ["true"]}, Ctx()())
    assert time.monotonic() - started < 5
    assert failed.value.message.startswith(f"no container runtime reachable at {host}: ")
    assert failed.value.retryable is False
    assert failed.value.error_type == "ContainerRuntimeUnavailable"
    rt.close()


async def test_reachable_engine_is_available(runtime: ContainerRuntime) -> None:
    assert await runtime.available() is None
