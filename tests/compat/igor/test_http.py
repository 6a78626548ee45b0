"""The Igor dialect over real HTTP against a running ``treadle standalone``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import json_of, poll
from tests.conftest import ROOT, Server, start_server

HERE = Path(__file__).parent
UUID_TIME_KEYS = ("created_at", "updated_at")

# The job of Igor's README, verbatim but for its missing colon after "type" (not JSON).
README_JOB = """{
    "name": "my_job",
    "layers": [
        {
            "priority": 0,
            "name": "first_layer",
            "tasks": [
                {
                    "name": "task_0",
                    "type": "sleep"
                }
            ]
        },
        {
            "priority": 10,
            "name": "second_layer",
            "tasks": []
        }
    ]
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("igor")
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{HERE}", "IGOR_TEST_LOG": str(tmp / "batches.log")}
    # Eight slots so a batch of three can gather (the default is one per CPU).
    srv = start_server(tmp, "--import", "igor_handlers", "--queue", "default:8", env=env)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(client: httpx.Client, job: dict[str, Any] | str) -> dict[str, Any]:
    content = job if isinstance(job, str) else json.dumps(job)
    response = client.post("/api/v1/jobs", content=content)
    assert response.status_code == 200, response.text
    return dict(json_of(response))


def job_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    rows = client.get("/api/v1/jobs", params={"job_ids": job_id}).json()
    assert len(rows) == 1, rows
    return dict(rows[0])


def tasks_of(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/tasks", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    (row,) = tasks_of(client, task_ids=task_id)
    return row


def layer(client: httpx.Client, layer_id: str) -> dict[str, Any]:
    (row,) = client.get("/api/v1/layers", params={"layer_ids": layer_id}).json()
    return dict(row)


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return poll(lambda: job_of(client, job_id), lambda j: j["status"] in ("COMPLETED", "ERRORED"))


def patch(client: httpx.Client, op: str, refs: list[dict[str, Any]]) -> int:
    response = client.patch(f"/api/v1/{op}", json=refs)
    assert response.status_code == 200, response.text
    return int(response.json()["updated"])


def test_readme_job(client: httpx.Client) -> None:
    job = create(client, README_JOB)
    assert job["name"] == "my_job"
    assert job["status"] in ("PENDING", "RUNNING")
    assert [la["name"] for la in job["layers"]] == ["first_layer", "second_layer"]
    first, second = job["layers"]
    assert (first["priority"], second["priority"]) == (0, 10)
    assert second["tasks"] == [] and second["status"] == "PENDING"
    (t,) = first["tasks"]
    assert t["name"] == "task_0" and t["type"] == "sleep" and t["layer_id"] == first["id"]
    assert t["job_id"] == job["id"] == first["job_id"]
    assert t["status"] in ("PENDING", "QUEUED", "RUNNING", "COMPLETED")
    for obj in (job, first, second, t):
        assert obj["id"] and obj["etag"]
        assert all(isinstance(obj[k], int) and obj[k] > 1_600_000_000 for k in UUID_TIME_KEYS)
    assert first["paused_at"] == 0 and t["paused_at"] == 0
    assert finished(client, job["id"])["status"] == "COMPLETED"
    layers = client.get("/api/v1/layers", params={"job_ids": job["id"]}).json()
    assert {la["name"]: la["status"] for la in layers} == {
        "first_layer": "COMPLETED",
        "second_layer": "COMPLETED",
    }
    assert task(client, t["id"])["status"] == "COMPLETED"


def test_bad_jobs_get_igor_errors(client: httpx.Client) -> None:
    for body, words in (
        ({"name": "x", "layers": []}, "no layers"),
        ({"name": "x", "layers": [{"name": "l", "tasks": [{"name": "t"}]}]}, "type"),
        ({"name": "x", "layers": [{"name": "l"}], "extra": 1}, "extra"),
        ({"name": "x", "layers": [{"tasks": [{"type": "sleep", "args": "%%"}]}]}, "base64"),
    ):
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/plain")
        assert words in response.text and response.text.endswith("\n")
    assert client.get("/api/v1/tasks", params={"statuses": "nope"}).status_code == 400
    assert client.get("/api/v1/jobs", params={"job_ids": "NOT AN ID"}).status_code == 400


def test_malformed_bodies_and_unknown_objects(client: httpx.Client) -> None:
    for path, body in (
        ("/api/v1/jobs", '{"name": '),
        ("/api/v1/layers", '[{"layer_id": '),
        ("/api/v1/tasks", "[{"),
    ):
        response = client.post(path, content=body)
        assert response.status_code == 400, (path, response.text)
        assert response.text.startswith("invalid JSON") and response.text.endswith("\n")
    assert client.post("/api/v1/jobs", content="[1]").status_code == 400
    unknown = "11111111-1111-4111-8111-111111111111"
    # /layers answers per item; /tasks is all or nothing.
    added = client.post("/api/v1/layers", json=[{"layer_id": unknown, "type": "sleep"}])
    assert added.status_code == 200
    [item] = added.json()
    assert item["layer_id"] == unknown and unknown in item["error"]
    refused = client.post("/api/v1/tasks", json=[{"layer_id": unknown, "type": "sleep"}])
    assert refused.status_code == 400 and unknown in refused.text
    assert client.get("/api/v1/jobs", params={"job_ids": unknown}).json() == []
    # Toggles count only what they changed: unknown ids and kinds are left out, not errors.
    for kind in ("Task", "Layer", "Bogus"):
        assert patch(client, "pause", [{"kind": kind, "id": unknown, "etag": "1"}]) == 0
    malformed = client.patch(
        "/api/v1/pause", content="[{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code in (400, 422)
    assert "JSON" in json_of(malformed)["error"]["message"]
    not_a_list = client.patch("/api/v1/kill", json={"kind": "Task", "id": unknown, "etag": "1"})
    assert not_a_list.status_code in (400, 422) and "list" in not_a_list.text


def test_add_tasks_to_layers(client: httpx.Client) -> None:
    job = create(
        client,
        {
            "name": "adding",
            "layers": [
                {"name": "busy", "priority": 0, "tasks": [{"type": "sleep", "args": b64("2")}]},
                {"name": "later", "priority": 5},
            ],
        },
    )
    busy, later = job["layers"]
    poll(lambda: layer(client, busy["id"]), lambda la: la["status"] == "RUNNING")
    response = client.post(
        "/api/v1/layers",
        json=[
            {"layer_id": later["id"], "type": "sleep", "name": "hello!"},
            {"layer_id": busy["id"], "type": "sleep", "name": "too late"},
            {"layer_id": later["id"], "type": "sleep", "name": "hello!"},
        ],
    )
    assert response.status_code == 200, response.text
    ok, late, again = response.json()
    assert ok["name"] == "hello!" and ok["layer_id"] == later["id"] and ok["status"] == "PENDING"
    assert "error" in late and "busy" in late["error"] and late["layer_id"] == busy["id"]
    assert again["name"] == "hello!" and again["id"] != ok["id"]
    # /api/v1/tasks is all or nothing: one started layer rejects the whole request.
    response = client.post(
        "/api/v1/tasks",
        json=[
            {"layer_id": later["id"], "type": "sleep", "name": "not added"},
            {"layer_id": busy["id"], "type": "sleep"},
        ],
    )
    assert response.status_code == 400 and "invalid state" in response.text
    assert finished(client, job["id"])["status"] == "COMPLETED"
    names = sorted(t["name"] for t in tasks_of(client, layer_ids=later["id"]))
    assert names == ["hello!", "hello!"]
    assert all(t["status"] == "COMPLETED" for t in tasks_of(client, job_ids=job["id"]))


def test_toggles_with_etags(client: httpx.Client) -> None:
    job = create(
        client,
        {
            "name": "toggles",
            "layers": [
                {"name": "run", "priority": 0, "tasks": [{"type": "sleep", "args": b64("30")}]},
                {
                    "name": "wait",
                    "priority": 1,
                    "tasks": [{"type": "sleep", "name": "a"}, {"type": "sleep", "name": "b"}],
                },
            ],
        },
    )
    (long,) = job["layers"][0]["tasks"]
    a, b = job["layers"][1]["tasks"]
    ref = {"kind": "Task", "id": a["id"], "etag": a["etag"]}
    stale = {"kind": "Task", "id": b["id"], "etag": "999"}
    assert patch(client, "pause", [ref, stale]) == 1
    paused = task(client, a["id"])
    assert paused["paused_at"] > 0 and paused["status"] == "PENDING"
    assert task(client, b["id"])["paused_at"] == 0
    # The etag moved: the old one is stale now (Igor's pause route must not retry the task).
    assert patch(client, "unpause", [ref]) == 0
    fresh = {"kind": "Task", "id": a["id"], "etag": paused["etag"]}
    assert patch(client, "unpause", [fresh]) == 1
    assert task(client, a["id"])["paused_at"] == 0
    current = task(client, b["id"])
    assert patch(client, "skip", [{"kind": "Task", "id": b["id"], "etag": current["etag"]}]) == 1
    assert task(client, b["id"])["status"] == "SKIPPED"
    running = poll(lambda: task(client, long["id"]), lambda t: t["status"] == "RUNNING")
    assert patch(client, "kill", [{"kind": "Task", "id": long["id"], "etag": "1"}]) == 0
    assert patch(client, "kill", [{"kind": "Task", "id": long["id"], "etag": running["etag"]}]) == 1
    killed = poll(lambda: task(client, long["id"]), lambda t: t["status"] == "ERRORED")
    assert job_of(client, job["id"])["status"] in ("RUNNING", "ERRORED")
    assert patch(client, "retry", [{"kind": "Task", "id": long["id"], "etag": killed["etag"]}]) == 1
    assert task(client, long["id"])["status"] in ("PENDING", "QUEUED", "RUNNING")
    # Its etag once it runs again: before that, a worker's claim moves it between read and kill.
    now = poll(lambda: task(client, long["id"]), lambda t: t["status"] == "RUNNING")
    assert patch(client, "kill", [{"kind": "Task", "id": long["id"], "etag": now["etag"]}]) == 1


def test_batch_handler_sets_statuses(client: httpx.Client, server: Server) -> None:
    words = ["x", "fail", "skip", "", "y"]
    tasks = [{"type": "igor_batch", "name": f"t{i}", "args": b64(w)} for i, w in enumerate(words)]
    job = create(client, {"name": "batch", "layers": [{"name": "only", "tasks": tasks}]})
    assert finished(client, job["id"])["status"] == "ERRORED"
    rows = {t["name"]: t for t in tasks_of(client, job_ids=job["id"])}
    assert {n: t["status"] for n, t in rows.items()} == {
        "t0": "COMPLETED",
        "t1": "ERRORED",
        "t2": "SKIPPED",
        "t3": "COMPLETED",
        "t4": "COMPLETED",
    }
    assert rows["t0"]["message"] == "done x"
    assert "t1 failed on purpose" in rows["t1"]["message"]
    assert rows["t2"]["message"] == "not needed"
    assert len(tasks_of(client, job_ids=job["id"], statuses="completed")) == 3
    log = (server.db.parent / "batches.log").read_text().splitlines()
    batches = [json.loads(line) for line in log]
    assert sorted(n for b in batches for n in b) == [f"t{i}" for i in range(5)]
    assert max(len(b) for b in batches) == 3, batches  # batch_size caps a batch
    assert len(batches) >= 2
