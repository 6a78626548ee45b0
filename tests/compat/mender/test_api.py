"""Mender workflows' HTTP API on a real `treadle standalone` loading a folder of workflows."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.mender.test_translate import README_WORKFLOW
from tests.conftest import EchoServer, Server, start_server

MOCKY = "http://www.mocky.io"


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    # A module-wide echo server, so one treadle server can load workflows that point at it.
    import threading
    from http.server import ThreadingHTTPServer

    from tests.conftest import _Echo

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield EchoServer(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def cli_workflow() -> dict[str, Any]:
    script = (
        "import sys, json; print(json.dumps({'args': sys.argv[1:]})); sys.exit(int(sys.argv[2]))"
    )
    return {
        "name": "run_script",
        "description": "A cli task, a conditional task and an HTTP check.",
        "version": 1,
        "tasks": [
            {
                "name": "script",
                "type": "cli",
                "cli": {
                    "command": [
                        sys.executable,
                        "-c",
                        script,
                        "${workflow.input.who}",
                        "${workflow.input.code|0}",
                    ],
                    "executionTimeOut": 30,
                },
            },
            {
                "name": "only_with_tag",
                "type": "cli",
                "requires": ["${workflow.input.tag}"],
                "cli": {"command": ["echo", "${workflow.input.tag}"]},
            },
            {
                "name": "check",
                "type": "http",
                "http": {
                    "uri": "ECHO/status/${script.json.args.[0]}",
                    "method": "GET",
                    "statusCodes": [204],
                },
            },
        ],
        "inputParameters": ["who"],
        "optionalParameters": ["tag", "code"],
        "schemaVersion": 1,
    }


@pytest.fixture(scope="module")
def mender_server(tmp_path_factory: pytest.TempPathFactory, echo: EchoServer) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("mender")
    folder = tmp / "workflows"
    folder.mkdir()
    (folder / "decommission_device.json").write_text(README_WORKFLOW.replace(MOCKY, echo.url))
    (folder / "run_script.json").write_text(json.dumps(cli_workflow()).replace("ECHO", echo.url))
    srv = start_server(tmp, "--definitions", str(folder))
    try:
        yield srv
    finally:
        srv.stop()


def wait_job(client: httpx.Client, name: str, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/api/workflow/{name}/{job_id}")
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["status"] in ("done", "failed"):
            return job
        assert job["status"] in ("pending", "processing")
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_status(mender_server: Server) -> None:
    with mender_server.client() as client:
        assert client.get("/status").json() == {"status": "ok"}


def test_readme_workflow_runs_with_substituted_inputs(
    mender_server: Server, echo: EchoServer
) -> None:
    request_id = uuid.uuid4().hex
    inputs = {"device_id": "dev-1", "request_id": request_id, "authorization": "Bearer t"}
    with mender_server.client() as client:
        started = client.post("/api/workflow/decommission_device", json=inputs)
        assert started.status_code == 201, started.text
        assert started.json()["name"] == "decommission_device"
        job = wait_job(client, "decommission_device", started.json()["id"])
    assert job["status"] == "done", job
    assert job["id"] == started.json()["id"] and job["workflowName"] == "decommission_device"
    assert job["inputParameters"] == [{"name": k, "value": v} for k, v in inputs.items()]
    [sent] = [r for r in echo.requests if r["headers"].get("X-MEN-RequestID") == request_id]
    assert sent["method"] == "PUT"
    assert sent["path"] == "/v2/5de377e13000006800e9c9c2?mocky-delay=2000ms"
    assert json.loads(sent["body"]) == {"device_id": "dev-1"}
    assert sent["headers"]["Authorization"] == "Bearer t"
    [result] = job["results"]
    assert result["success"] is True and result["skipped"] is False and result["type"] == "http"
    assert result["httpRequest"]["method"] == "PUT"
    assert result["httpRequest"]["body"] == '{"device_id": "dev-1"}'
    assert f"X-MEN-RequestID: {request_id}" in result["httpRequest"]["headers"]
    assert result["httpResponse"]["statusCode"] == 200
    assert json.loads(result["httpResponse"]["body"])["method"] == "PUT"


def test_cli_requires_and_status_codes(mender_server: Server) -> None:
    with mender_server.client() as client:
        answer = client.post("/api/v1/workflow/run_script", json={"who": "204", "extra": [1, 2]})
        assert answer.status_code == 201, answer.text
        job = wait_job(client, "run_script", answer.json()["id"])
    assert job["status"] == "done", job
    script, skipped, check = job["results"]
    assert script["cli"]["exitCode"] == 0
    assert json.loads(script["cli"]["output"]) == {"args": ["204", "0"]}
    assert skipped == {"name": "only_with_tag", "type": "cli", "success": True, "skipped": True}
    assert check["httpResponse"]["statusCode"] == 204
    assert {"name": "extra", "value": "1,2"} in job["inputParameters"]


def test_failing_task_fails_the_job_and_stops_it(mender_server: Server) -> None:
    with mender_server.client() as client:
        answer = client.post("/api/workflow/run_script", json={"who": "x", "code": 3, "tag": "t"})
        job = wait_job(client, "run_script", answer.json()["id"])
    assert job["status"] == "failed"
    [script] = job["results"]  # later tasks never ran
    assert script["success"] is False and script["cli"]["exitCode"] == 3


def test_unexpected_http_status_fails(mender_server: Server) -> None:
    with mender_server.client() as client:
        answer = client.post("/api/workflow/run_script", json={"who": "500", "tag": "t"})
        job = wait_job(client, "run_script", answer.json()["id"])
    assert job["status"] == "failed"
    assert [r["success"] for r in job["results"]] == [True, True, False]
    assert job["results"][2]["httpResponse"]["statusCode"] == 500


def test_missing_required_input_is_400_naming_it(mender_server: Server) -> None:
    with mender_server.client() as client:
        answer = client.post("/api/workflow/decommission_device", json={"device_id": "d"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "Missing input parameters: [request_id authorization]"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [("{nope", "malformed JSON body"), ("[1]", "JSON object"), ("", "JSON object")],
)
def test_malformed_bodies_are_400(mender_server: Server, body: str, fragment: str) -> None:
    with mender_server.client() as client:
        answer = client.post("/api/workflow/run_script", content=body)
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]


def test_unknown_workflow_and_job(mender_server: Server) -> None:
    with mender_server.client() as client:
        missing = client.post("/api/workflow/no_such_workflow", json={})
        assert (missing.status_code, missing.json()) == (404, {"error": "workflow not found"})
        assert client.get(f"/api/workflow/run_script/{uuid.uuid4()}").status_code == 404
        job_id = client.post("/api/workflow/run_script", json={"who": "204"}).json()["id"]
        wrong = client.get(f"/api/workflow/decommission_device/{job_id}")
        assert (wrong.status_code, wrong.json()) == (404, {"error": "not found"})
        old = client.post(
            "/api/workflow/run_script", json={"who": "1"}, headers={"X-Workflows-Min-Version": "2"}
        )
        assert old.status_code == 404


def test_batch_and_metadata(mender_server: Server) -> None:
    name = f"hello_{uuid.uuid4().hex[:6]}"
    workflow = {
        "name": name,
        "version": 1,
        "tasks": [
            {"name": "say", "type": "cli", "cli": {"command": ["echo", "${workflow.input.x}"]}}
        ],
        "inputParameters": ["x"],
    }
    with mender_server.client() as client:
        assert client.post("/api/v1/metadata/workflows", json=workflow).status_code == 201
        again = client.post("/api/v1/metadata/workflows", json=workflow)
        assert again.status_code == 409
        nameless = client.post("/api/v1/metadata/workflows", json={"tasks": []})
        assert (nameless.status_code, nameless.json()) == (400, {"error": "Workflow missing name"})
        listed = client.get("/api/v1/metadata/workflows").json()
        assert name in {w["name"] for w in listed} and "decommission_device" in {
            w["name"] for w in listed
        }
        batch = client.post(f"/api/v1/workflow/{name}/batch", json=[{"x": "1"}, {"x": "2"}])
        assert batch.status_code == 201
        jobs = [wait_job(client, name, item["id"]) for item in batch.json()]
        assert [j["results"][0]["cli"]["output"] for j in jobs] == ["1\n", "2\n"]
        refused = client.post(f"/api/v1/workflow/{name}/batch", json=[{"x": "1"}, {}])
        assert refused.status_code == 400 and "[x]" in refused.json()["error"]


def test_bad_mender_files_are_refused_with_the_reason(mender_server: Server) -> None:
    bad = {
        "name": "bad",
        "tasks": [{"name": "t", "type": "smtp", "smtp": {}}],
        "inputParameters": [],
    }
    with mender_server.client() as client:
        answer = client.post("/api/v1/definitions", json=bad)
    assert answer.status_code == 422
    assert "task type 'smtp' is not supported" in answer.json()["error"]["message"]


def test_folder_loading_skips_broken_files(tmp_path: Path, echo: EchoServer) -> None:
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "a.json").write_text(README_WORKFLOW.replace(MOCKY, echo.url))
    (folder / "b.json").write_text('{"name": "broken", "tasks": [{"name": "t", "type": "nats"}]}')
    srv = start_server(tmp_path, "--definitions", str(folder))
    try:
        with srv.client() as client:
            names = {d["name"] for d in client.get("/api/v1/definitions").json()["items"]}
    finally:
        srv.stop()
    assert "decommission_device" in names and "broken" not in names
    assert "nats" in srv.log.read_text()
