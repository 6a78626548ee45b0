"""gin's fleet: `treadle gin -mode api|master|job` as three processes on RabbitMQ and Redis.

Each test gets its own Redis key prefix (the treadle store) and RabbitMQ queue prefix, both
removed afterwards. The gin workflows that gin itself would have written to Redis live under
gin's bare ``workflow.<Name>`` keys with a unique name, deleted afterwards too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.compat.gin.test_api import readme_workflow, wait_state
from tests.conftest import EchoServer, free_port
from tests.contract.store_services import drop_redis, open_redis
from tests.integration.cluster import (
    QUICK,
    RABBITMQ_URL,
    REDIS_URL,
    Cluster,
    Proc,
    service_down,
    wait_for,
    with_options,
)

HANDLERS = """
import treadle

@treadle.handler("shout")
def shout(**context):
    return {"loud": context["text"].upper()}
"""


class GinFleet(Cluster):
    """The cluster helpers (processes, logs, queue cleanup) with gin's flags for each role."""

    @property
    def redis(self) -> str:
        return with_options(REDIS_URL, f"prefix={self.namespace}:")

    @property
    def amqp(self) -> str:
        return with_options(RABBITMQ_URL, f"prefix={self.namespace}&{QUICK}")

    def gin(self, mode: str, *extra: str) -> Proc:
        flags = ["-mode", mode, "-amqp", self.amqp, "-redis", self.redis, *extra]
        return self._spawn("gin", flags)


def _reachable() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        service_down("Redis", exc)
    import aio_pika

    async def probe() -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        service_down("RabbitMQ", exc)


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GinFleet]:
    _reachable()
    (tmp_path / "gin_fleet_handlers.py").write_text(HANDLERS)
    cluster = GinFleet(tmp_path, "rabbitmq", namespace=f"gin_{uuid.uuid4().hex[:10]}")
    try:
        yield cluster
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(cluster.logs())
        cluster.close()  # stops the processes, deletes the queues

        async def drop() -> None:
            await drop_redis(await open_redis(f"{cluster.namespace}:"))

        asyncio.run(drop())


def start_fleet(fleet: GinFleet, tmp_path: Path, folder: Path) -> str:
    """api, master and job nodes, each its own process; the api's URL."""
    migrate = [sys.executable, "-m", "treadle.cli.main", "migrate", "--db", fleet.redis]
    done = subprocess.run(migrate, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    port = free_port()
    api = fleet.gin("api", "-host", "127.0.0.1", "-port", str(port), "-definitions", str(folder))
    master = fleet.gin("master")
    job = fleet.gin("job", "-import", "gin_fleet_handlers")
    url = f"http://127.0.0.1:{port}"

    def api_ready() -> bool:
        assert api.alive(), api.text()
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(api_ready, 60, "the gin api node to be ready")
    fleet._wait_running(master)
    fleet._wait_running(job)
    return url


def test_three_gin_nodes_run_the_readme_workflow_and_a_redis_stored_one(
    fleet: GinFleet, tmp_path: Path, echo_server: EchoServer
) -> None:
    name = f"do stuff {fleet.namespace}"
    folder = tmp_path / "workflows"
    folder.mkdir()
    doc = readme_workflow(f"{echo_server.url}/some-endpoint", name)
    (folder / "do_stuff.json").write_text(json.dumps(doc))
    url = start_fleet(fleet, tmp_path, folder)
    # A workflow gin itself wrote to Redis: bare key, Go field names, custom step type.
    stored_name = f"from gin {fleet.namespace}"
    stored = {
        "Name": stored_name,
        "Variables": {"greeting": "hello"},
        "Steps": [
            {
                "Name": "loud",
                "Type": "shout",
                "Register": "said",
                "Context": {"text": "{{.Defaults.greeting}} {{.Runtime.who}}"},
            },
            {"Name": "tell", "Type": "log", "Context": {"message": "{{.said.loud}}!"}},
        ],
    }
    key = "workflow." + stored_name.replace(" ", "_")
    connection = redis.Redis.from_url(REDIS_URL)
    connection.set(key, json.dumps(stored))
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            started = client.post("/wf/", json={"Name": name, "Variables": {"foo": "bar"}})
            assert started.status_code == 200, started.text
            run_id = started.json()["UUID"]
            other = client.post("/wf/", json={"Name": stored_name, "Variables": {"who": "gin"}})
            assert other.status_code == 200, other.text
            readme = wait_state(client, run_id, timeout=90)
            from_redis = wait_state(client, other.json()["UUID"], timeout=90)
    finally:
        connection.delete(key)
        connection.close()
    assert readme["State"] == "ended", readme
    assert set(readme) == {
        "EndTime",
        "ErrorMessage",
        "Last",
        "StartTime",
        "State",
        "UUID",
        "Variables",
        "Workflow",
    }
    assert (readme["UUID"], readme["Last"], readme["ErrorMessage"]) == (
        run_id,
        "Templatery Stuff",
        "",
    )
    assert readme["Variables"]["Runtime"] == {"foo": "bar"}
    assert readme["Variables"]["echo_data"]["body"] == "foo=bar"
    post, log = readme["Workflow"]["Steps"]
    assert post["Context"] == {
        "url": f"{echo_server.url}/some-endpoint",
        "content-type": "application/data",
        "data": "foo=bar",
    }
    assert (post["Failed"], post["Type"], post["Register"]) == (False, "post-to-web", "echo_data")
    assert post["Duration"].endswith(" ms") and len(post["End"]) == 19
    assert log["Context"] == {"message": "foo=bar for bar"}
    assert readme["Workflow"]["Name"] == name
    # The job node (another process) made the HTTP call.
    assert [r["body"] for r in echo_server.requests if r["path"] == "/some-endpoint"] == ["foo=bar"]
    assert from_redis["State"] == "ended", from_redis
    loud, tell = from_redis["Workflow"]["Steps"]
    assert loud["Context"] == {"text": "hello gin"}
    assert from_redis["Variables"]["said"] == {"loud": "HELLO GIN"}
    assert tell["Context"] == {"message": "HELLO GIN!"}
    # Each role ran where gin's flags put it.
    api, master, job = fleet.procs
    assert "treadle coordinator running" in master.text()
    assert "treadle worker running" in job.text()
    assert "running; Ctrl-C to stop" not in api.text()  # the api node runs no engine role
