"""The SDK and the CLI against a real ``treadle standalone`` process over HTTP."""

from __future__ import annotations

import json

import pytest

import treadle
from treadle import errors
from treadle.sdk import AsyncClient, Client, InvalidDefinition, WaitTimeout

from .conftest import cli

CHAIN = """
name: sdk-chain
inputs:
  who: {type: string, required: true}
tasks:
  - name: hello
    kind: shell
    command: ["sh", "-c", "echo hello $0; echo '{\\"n\\": 3}'", "{{ inputs.who }}"]
  - name: report
    kind: log
    message: "{{ tasks.hello.output.json.n }} for {{ inputs.who }}"
"""


def test_definition_run_wait_logs(server: str) -> None:
    with Client(server) as client:
        ref = client.definitions.create(CHAIN)
        assert ref.name == "sdk-chain"
        stored = client.definitions.get("sdk-chain")
        assert stored.version == ref.version and stored.document is not None
        run = client.runs.create(definition="sdk-chain", inputs={"who": "ann"})
        assert run.id and run.status in ("pending", "running")
        done = client.runs.wait(run.id, timeout=30)
        assert done.status == "completed"
        assert done.task("hello").output["json"] == {"n": 3}
        assert done.task("hello").attempts[0].status == "completed"
        assert "hello ann" in client.runs.logs(run.id, "hello")
        followed = "".join(client.runs.logs(run.id, "hello", follow=True))
        assert "hello ann" in followed
        assert any(r.id == run.id for r in client.runs.list(definition="sdk-chain"))
        assert client.runs.events(run.id)[0].kind == "run.created"
        assert client.workers.list()[0].status == "alive"


def test_errors_from_the_server(server: str) -> None:
    with Client(server) as client:
        with pytest.raises(errors.NotFound, match="no-such-run"):
            client.runs.get("no-such-run")
        with pytest.raises(InvalidDefinition) as bad:
            client.definitions.create({"name": "bad", "tasks": [{"name": "x", "kind": "nope"}]})
        assert bad.value.status == 422 and "kind" in bad.value.message
        run = client.runs.create(
            {"name": "slow", "tasks": [{"name": "s", "kind": "sleep", "seconds": 5}]}
        )
        with pytest.raises(WaitTimeout):
            client.runs.wait(run, timeout=0.3)
        with pytest.raises(errors.Conflict):
            client.runs.cancel(run, etag="999")
        cancelled = client.runs.cancel(client.runs.get(run))
        assert cancelled.status == "cancelled"


def test_code_first_workflow_deployed_and_run(server: str) -> None:
    from .sdk_handlers import flow  # the module the server imports as `sdk_handlers`

    with Client(server) as client:
        ref = client.definitions.create(flow)
        run = client.runs.wait(client.runs.create(ref.name, {"value": 21}), timeout=30)
    assert run.status == "completed", run.error
    assert run.task("multiply").output == 42
    assert run.task("echo").output["stdout"].strip() == "product 42"


async def test_async_client(server: str) -> None:
    async with AsyncClient(server) as client:
        await client.definitions.create(CHAIN)
        run = await client.runs.create("sdk-chain", {"who": "bob"})
        done = await client.runs.wait(run, timeout=30)
        text = "".join([c async for c in client.runs.follow_logs(run, "hello")])
        health = await client.health()
    assert done.status == "completed"
    assert "hello bob" in text
    assert health["status"] == "ok"


def test_cli_runs_commands(server: str) -> None:
    env = {"TREADLE_SERVER": server}
    with Client(server) as client:
        client.definitions.create(CHAIN)
        run = client.runs.wait(client.runs.create("sdk-chain", {"who": "cli"}), timeout=30)

    listed = cli("runs", "ls", "-o", "json", "--definition", "sdk-chain", env=env)
    assert listed.returncode == 0, listed.stderr
    assert run.id in [r["id"] for r in json.loads(listed.stdout)["items"]]

    as_yaml = cli("runs", "get", run.id, "-o", "yaml", env=env)
    assert as_yaml.returncode == 0 and f"id: {run.id}" in as_yaml.stdout

    table = cli("runs", "get", run.id, env=env)
    assert "hello" in table.stdout and "completed" in table.stdout

    logs = cli("runs", "logs", run.id, "hello", "-f", env=env)
    assert "hello cli" in logs.stdout

    replay = cli("runs", "replay", run.id, "-i", "who=dan", "--watch", env=env)
    assert replay.returncode == 0, replay.stderr
    lines = replay.stdout.strip().splitlines()
    new_id = lines[0]
    assert new_id != run.id
    # Not a terminal: one line per event, ending with the run's final state.
    assert "task hello: completed" in lines and lines[-1] == f"run {new_id}: completed"
    with Client(server) as client:
        assert client.runs.get(new_id).inputs == {"who": "dan"}

    missing = cli("runs", "get", "nope", env=env)
    assert missing.returncode == 1 and "404" in missing.stderr and "Traceback" not in missing.stderr

    health = cli("health", "-o", "json", env=env)
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "ready"

    unreachable = cli("health", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_cli_deploy(server: str) -> None:
    result = cli(
        "deploy",
        "sdk_handlers:flow",
        "--server",
        server,
        env={"PYTHONPATH": "src:tests/integration/sdk"},
    )
    assert result.returncode == 0, result.stderr
    assert "deployed sdk-flow v" in result.stdout
    with Client(server) as client:
        assert client.definitions.get("sdk-flow").document is not None
    bad = cli(
        "deploy",
        "sdk_handlers:nothing",
        "--server",
        server,
        env={"PYTHONPATH": "src:tests/integration/sdk"},
    )
    assert bad.returncode == 2 and "no attribute 'nothing'" in bad.stderr


def test_treadle_exports_client() -> None:
    assert treadle.Client is Client


def test_metrics_endpoint_reports_state_and_attempts(server: str) -> None:
    import httpx

    with Client(server) as client:
        client.definitions.create(CHAIN)
        client.runs.wait(client.runs.create("sdk-chain", {"who": "metrics"}), timeout=30)
    response = httpx.get(f"{server}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['treadle_runs{state="completed"}'] >= 1
    assert samples['treadle_tasks{state="completed"}'] >= 2
    assert samples['treadle_attempts_total{kind="shell",outcome="completed"}'] >= 1
    assert samples['treadle_task_duration_seconds_count{kind="shell"}'] >= 1
    assert samples['treadle_run_duration_seconds_count{state="completed"}'] >= 1
    assert "treadle_lease_expiries_total" in samples
