"""gin's HTTP API on a real `treadle standalone`, driven over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.compat.gin.test_translate import README_WORKFLOW
from tests.conftest import EchoServer, Server, start_server

HANDLERS = """
import treadle

@treadle.handler("send-email")
def send_email(**context):
    return {"sent_to": context["to"], "subject": context["subject"]}
"""
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def gin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("gin")
    (tmp / "gin_handlers.py").write_text(HANDLERS)
    srv = start_server(tmp, "--import", "gin_handlers", env={"TREADLE_GIN_REDIS": REDIS_URL})
    try:
        yield srv
    finally:
        srv.stop()


def readme_workflow(echo_url: str, name: str) -> dict[str, Any]:
    doc = json.loads(README_WORKFLOW)
    doc["name"] = name
    doc["variables"]["echo_url"] = echo_url
    return dict(doc)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def wait_state(client: httpx.Client, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = client.get(f"/wf/{run_id}").json()
        if doc["State"] in ("ended", "failed"):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)


def test_readme_workflow_runs_and_reports_like_gin(
    gin_server: Server, echo_server: EchoServer
) -> None:
    name = unique("do stuff")
    with gin_server.client() as client:
        created = client.post(
            "/api/v1/definitions", json=readme_workflow(f"{echo_server.url}/some-endpoint", name)
        )
        assert created.status_code == 201, created.text
        assert created.json()["dialect"] == "gin"
        started = client.post("/wf/", json={"Name": name, "Variables": {"foo": "bar"}})
        assert started.status_code == 200, started.text
        run_id = started.json()["UUID"]
        doc = wait_state(client, run_id)
    assert doc["State"] == "ended", doc
    assert doc["UUID"] == run_id
    assert doc["ErrorMessage"] == ""
    assert doc["Last"] == "Templatery Stuff"
    assert doc["EndTime"] != "0001-01-01T00:00:00Z"
    # The echo server saw gin's POST: compiled URL, content type and data.
    [request] = [r for r in echo_server.requests if r["path"] == "/some-endpoint"]
    assert request["method"] == "POST"
    assert request["body"] == "foo=bar"
    assert request["headers"]["Content-Type"] == "application/data"
    post, log = doc["Workflow"]["Steps"]
    assert post["Context"] == {
        "url": f"{echo_server.url}/some-endpoint",
        "content-type": "application/data",
        "data": "foo=bar",
    }
    assert post["Failed"] is False and post["Type"] == "post-to-web"
    assert post["Duration"].endswith(" ms") and len(post["Start"]) == 19
    assert log["Context"] == {"message": "foo=bar for bar"}
    variables = doc["Variables"]
    assert variables["Defaults"]["content_type"] == "application/data"
    assert variables["Runtime"] == {"foo": "bar"}
    assert variables["echo_data"]["body"] == "foo=bar"  # the registered output
    assert "" not in variables and "something" not in variables  # log has no Data
    assert doc["Workflow"]["Name"] == name


def test_failed_step_keeps_later_steps_uncompiled(gin_server: Server) -> None:
    name = unique("do stuff")
    dead = "http://127.0.0.1:9/some-endpoint"  # nothing listens on the discard port
    with gin_server.client() as client:
        client.post("/api/v1/definitions?dialect=gin", json=readme_workflow(dead, name))
        run_id = client.post("/wf/", json={"name": name}).json()["UUID"]
        doc = wait_state(client, run_id)
    assert doc["State"] == "failed"
    assert doc["ErrorMessage"] == 'Step "Test Stuff" failed. See below'
    assert doc["Last"] == "Test Stuff"
    post, log = doc["Workflow"]["Steps"]
    assert post["Failed"] is True and "127.0.0.1:9" in post["ErrorMessage"]
    assert post["Context"]["url"] == dead
    assert log["Context"] == {"message": "{{.echo_data.body}} for {{.Runtime.foo}}"}
    assert (log["Start"], log["Duration"], log["Failed"]) == ("", "", False)
    assert "Runtime" not in doc["Variables"]


def test_custom_step_types_run_registered_handlers(
    gin_server: Server, echo_server: EchoServer
) -> None:
    name = unique("mail")
    workflow = {
        "Name": name,
        "Variables": {"url": f"{echo_server.url}/price"},
        "Steps": [
            {
                "Name": "fetch",
                "Type": "post-to-web",
                "Register": "resp",
                "Context": {"url": "{{.Defaults.url}}", "content-type": "text/plain", "data": "q"},
            },
            {
                "Name": "send",
                "Type": "send-email",
                "Register": "mail",
                "Context": {"to": "{{.Runtime.to}}", "subject": "price id {{.resp.id}}"},
            },
            {"Name": "report", "Type": "log", "Context": {"message": "sent {{.mail.subject}}"}},
        ],
    }
    with gin_server.client() as client:
        assert client.post("/api/v1/definitions", json=workflow).status_code == 201
        run_id = client.post(
            "/wf/", json={"Name": name, "Variables": {"to": "ops@example.org"}}
        ).json()["UUID"]
        doc = wait_state(client, run_id)
    assert doc["State"] == "ended", doc
    steps = {s["Name"]: s for s in doc["Workflow"]["Steps"]}
    assert steps["send"]["Context"] == {"to": "ops@example.org", "subject": "price id 7"}
    assert doc["Variables"]["mail"] == {"sent_to": "ops@example.org", "subject": "price id 7"}
    assert steps["report"]["Context"] == {"message": "sent price id 7"}


def test_unknown_step_type_fails_the_run_with_a_reason(gin_server: Server) -> None:
    name = unique("odd")
    workflow = {"Name": name, "Steps": [{"Name": "s", "Type": "no-such-job", "Context": {}}]}
    with gin_server.client() as client:
        assert client.post("/api/v1/definitions", json=workflow).status_code == 201
        doc = wait_state(client, client.post("/wf/", json={"Name": name}).json()["UUID"])
    assert doc["State"] == "failed"
    assert "no-such-job" in doc["Workflow"]["Steps"][0]["ErrorMessage"]


def test_workflow_stored_by_gin_in_redis_is_found(gin_server: Server) -> None:
    name = unique("from redis")
    key = "workflow." + name.replace(" ", "_")
    stored = {
        "Name": name,
        "Variables": {"greeting": "hello"},
        "Steps": [
            {
                "Name": "say",
                "Type": "log",
                "Register": "",
                "Duration": "",
                "End": "",
                "ErrorMessage": "",
                "Failed": False,
                "Start": "",
                "UUID": "",
                "Context": {"message": "{{.Defaults.greeting}} {{.Runtime.who}}"},
            }
        ],
    }
    connection = redis.Redis.from_url(REDIS_URL)
    connection.set(key, json.dumps(stored))
    try:
        with gin_server.client() as client:
            answer = client.post("/wf/", json={"Name": name, "Variables": {"who": "gin"}})
            assert answer.status_code == 200, answer.text
            doc = wait_state(client, answer.json()["UUID"])
            assert client.get(f"/api/v1/definitions/{name}").json()["dialect"] == "gin"
    finally:
        connection.delete(key)
        connection.close()
    assert doc["State"] == "ended"
    assert doc["Workflow"]["Steps"][0]["Context"] == {"message": "hello gin"}


def test_readme_start_request_for_an_unknown_workflow_is_404(gin_server: Server) -> None:
    body = '{"Name": "nontrivial workflow", "Variables":{"foo": "bar"} }'  # gin's README curl
    with gin_server.client() as client:
        answer = client.post("/wf/", content=body)
    assert answer.status_code == 404
    assert answer.json() == {"Message": "workflow 'nontrivial workflow' not found"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "malformed JSON body"),
        ("[1, 2]", "must be a JSON object"),
        ('{"Variables": {}}', "Name is missing"),
        ('{"Name": "x", "Variables": "a=b"}', "Variables must be a JSON object"),
    ],
)
def test_malformed_start_requests_are_400(gin_server: Server, body: str, fragment: str) -> None:
    with gin_server.client() as client:
        answer = client.post("/wf/", content=body)
    assert answer.status_code == 400
    assert fragment in answer.json()["Message"]


def test_unknown_run_other_methods_and_monitor(gin_server: Server) -> None:
    with gin_server.client() as client:
        missing = client.get(f"/wf/{uuid.uuid4()}")
        assert missing.status_code == 404 and "no workflow run" in missing.json()["Message"]
        put = client.put("/wf/abc")
        assert put.status_code == 405
        assert put.json() == {"Message": 'Method "PUT" not allowed'}
        mon = client.get("/mon/").json()
        assert mon["UTF8"] == "\u2714" and isinstance(mon["PID"], int)


def test_bad_gin_definitions_are_refused_with_the_reason(gin_server: Server) -> None:
    bad = {
        "Name": "bad",
        "Steps": [{"Name": "s", "Type": "log", "Context": {"message": "{{.nothing.here}}"}}],
    }
    with gin_server.client() as client:
        answer = client.post("/api/v1/definitions?dialect=gin", json=bad)
    assert answer.status_code == 422
    assert (
        "not Defaults, Runtime or the Register of an earlier step"
        in answer.json()["error"]["message"]
    )


def test_definitions_import_command_reads_gin_files(gin_server: Server, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import treadle_cmd

    name = unique("imported")
    file = tmp_path / "wf.json"
    file.write_text(json.dumps(readme_workflow("http://127.0.0.1:9/x", name)))
    done = subprocess.run(
        [
            *treadle_cmd(),
            "definitions",
            "import",
            "--dialect",
            "gin",
            str(file),
            "--server",
            gin_server.url,
        ],
        capture_output=True,
        text=True,
        env=gin_server.env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with gin_server.client() as client:
        assert client.get(f"/api/v1/definitions/{name}").json()["dialect"] == "gin"
