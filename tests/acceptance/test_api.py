"""The native REST API of a real `treadle standalone`, over HTTP."""

from __future__ import annotations

import time

from tests.conftest import EchoServer, Server

PIPELINE = """
name: pipeline
version: 1
inputs:
  day: {type: string, required: true}
vars:
  api: "{{ inputs.base }}"
tasks:
  - name: fetch
    kind: http
    method: POST
    url: "{{ inputs.base }}/rows?day={{ inputs.day }}"
    json: {"day": "{{ inputs.day }}"}
  - name: count
    kind: shell
    command: ["python3", "-c", "import json; print('noise'); print(json.dumps({'n': 3}))"]
    depends_on: []
  - name: pause
    kind: sleep
    seconds: 0.2
    depends_on: [fetch]
  - name: report
    kind: log
    message: >-
      {{ tasks.count.output.json.n }} rows for {{ inputs.day }},
      id {{ tasks.fetch.output.json.id }}
    depends_on: [count, pause]
"""


def _pipeline(base: str) -> str:
    return PIPELINE.replace(
        "  day: {type: string, required: true}",
        "  day: {type: string, required: true}\n  base: {type: string}",
    )


def test_definition_yaml_run_and_full_shape(server: Server, echo_server: EchoServer) -> None:
    with server.client() as client:
        created = client.post(
            "/api/v1/definitions",
            content=_pipeline(echo_server.url),
            headers={"Content-Type": "application/yaml"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "pipeline"
        assert created.json()["version"] == 1
        fetched = client.get("/api/v1/definitions/pipeline").json()
        assert [t["name"] for t in fetched["document"]["tasks"]] == [
            "fetch",
            "count",
            "pause",
            "report",
        ]
        started = client.post(
            "/api/v1/runs",
            json={"definition": "pipeline", "inputs": {"day": "mon", "base": echo_server.url}},
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
    run = server.wait_run(run_id)
    assert run["status"] == "completed", run
    for key in (
        "id",
        "definition",
        "status",
        "inputs",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "etag",
        "tasks",
    ):
        assert key in run
    tasks = {t["name"]: t for t in run["tasks"]}
    for task in tasks.values():
        for key in ("id", "name", "status", "output", "error", "etag", "attempts"):
            assert key in task
        assert len(task["attempts"]) == 1
    assert tasks["fetch"]["output"]["status"] == 200
    assert tasks["fetch"]["output"]["json"]["body"] == '{"day": "mon"}'
    assert tasks["count"]["output"]["json"] == {"n": 3}
    assert tasks["count"]["output"]["exit_code"] == 0
    assert tasks["report"]["output"]["message"] == "3 rows for mon, id 7"
    assert echo_server.requests[0]["path"] == "/rows?day=mon"
    # the two roots ran concurrently: count started before fetch's chain finished
    assert tasks["count"]["started_at"] < tasks["pause"]["finished_at"]
    with server.client() as client:
        logs = client.get(f"/api/v1/runs/{run_id}/tasks/count/logs")
        assert logs.status_code == 200
        assert "noise" in logs.text
        report_log = client.get(f"/api/v1/runs/{run_id}/tasks/report/logs").text
        assert "3 rows for mon" in report_log


def test_inline_definition_json_and_failure(server: Server) -> None:
    inline = {
        "name": "inline",
        "tasks": [
            {"name": "boom", "kind": "shell", "command": ["sh", "-c", "echo bad >&2; exit 3"]},
            {"name": "after", "kind": "noop"},
        ],
    }
    with server.client() as client:
        started = client.post("/api/v1/runs", json={"definition": inline})
        assert started.status_code == 201
    run = server.wait_run(started.json()["id"])
    assert run["status"] == "failed"
    tasks = {t["name"]: t for t in run["tasks"]}
    assert tasks["boom"]["status"] == "failed"
    assert tasks["boom"]["output"]["exit_code"] == 3
    assert "code 3" in tasks["boom"]["error"] and "bad" in tasks["boom"]["error"]
    assert tasks["after"]["status"] == "cancelled"
    assert "boom" in run["error"]


def test_list_filters_and_cursor_pagination(server: Server) -> None:
    inline = {"name": "tiny", "tasks": [{"name": "a", "kind": "noop"}]}
    with server.client() as client:
        ids = [
            client.post("/api/v1/runs", json={"definition": inline}).json()["id"] for _ in range(7)
        ]
        for run_id in ids:
            server.wait_run(run_id)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 3, "definition": "tiny"}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/runs", params=params).json()
            seen += [r["id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(ids)
        assert len(seen) == 7
        completed = client.get("/api/v1/runs", params={"status": "completed"}).json()
        assert all(r["status"] == "completed" for r in completed["items"])
        assert (
            client.get("/api/v1/runs", params={"status": "failed", "definition": "tiny"}).json()[
                "items"
            ]
            == []
        )


def test_cancel_stops_a_running_shell_task(server: Server) -> None:
    inline = {
        "name": "long",
        "tasks": [{"name": "nap", "kind": "shell", "command": ["sleep", "30"]}],
    }
    with server.client() as client:
        run_id = client.post("/api/v1/runs", json={"definition": inline}).json()["id"]
        deadline = time.monotonic() + 20
        while client.get(f"/api/v1/runs/{run_id}").json()["tasks"][0]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cancelled = client.post(f"/api/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/runs/{run_id}/cancel")
        assert again.status_code == 409
    run = server.wait_run(run_id)
    assert run["status"] == "cancelled"
    assert run["tasks"][0]["status"] == "cancelled"


def test_health_schema_workers_and_docs(server: Server) -> None:
    with server.client() as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/readyz").json()["status"] == "ready"
        schema = client.get("/api/v1/schema/definition").json()
        assert "tasks" in schema["properties"]
        workers = client.get("/api/v1/workers").json()["items"]
        assert workers and workers[0]["status"] == "alive"
        assert "default" in workers[0]["queues"]
        assert client.get("/openapi.json").status_code == 200
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "cdn" not in docs.text.lower()


def test_examples_folder_loaded_at_start(server: Server) -> None:
    with server.client() as client:
        names = [d["name"] for d in client.get("/api/v1/definitions").json()["items"]]
        assert "hello" in names
        run = client.post(
            "/api/v1/runs", json={"definition": "hello", "inputs": {"who": "tests"}}
        ).json()
    done = server.wait_run(run["id"])
    assert done["status"] == "completed"
    report = next(t for t in done["tasks"] if t["name"] == "report")
    assert report["output"]["message"].startswith("hello tests from run ")
