"""The Tork dialect over real HTTP against a running `treadle standalone`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import json_of, poll
from tests.conftest import Server, start_server
from treadle.compat.tork.translate import container_kind_available

EXAMPLES = Path(__file__).parent / "examples"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("tork"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def submit(client: httpx.Client, body: str, content_type: str = "text/yaml") -> dict[str, Any]:
    response = client.post("/task", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    task = json_of(response)
    assert re.fullmatch(r"[0-9a-f]{32}", task["id"])
    return dict(task)


def finished(client: httpx.Client, task_id: str) -> dict[str, Any]:
    return dict(
        poll(lambda: client.get(f"/task/{task_id}").json(), lambda t: t["state"] in TERMINAL)
    )


def test_status(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "UP"


def test_hello_yaml_verbatim(client: httpx.Client) -> None:
    task = submit(client, (EXAMPLES / "hello.yaml").read_text())
    assert task["state"] == "PENDING"
    assert task["name"] == "say hello"
    assert task["image"] == "ubuntu:mantic"
    done = finished(client, task["id"])
    if container_kind_available():
        # scripts/setup-containers.sh builds a local image tagged ubuntu:mantic.
        assert done["state"] == "COMPLETED", done
        assert done["result"] == "hello world"
    else:
        assert done["state"] == "FAILED"
        assert "no container runtime configured" in done["error"]
        assert "ubuntu:mantic" in done["error"]
        assert done["failedAt"]


def test_convert_yaml_verbatim_is_accepted(client: httpx.Client) -> None:
    task = submit(client, (EXAMPLES / "convert.yaml").read_text())
    assert task["volumes"] == ["/tmp"]
    assert [p["name"] for p in task["pre"]] == ["download the remote file"]
    assert [p["name"] for p in task["post"]] == ["upload the converted file"]
    done = finished(client, task["id"])
    assert done["state"] == "FAILED"  # no container runtime, or no internet for wget
    assert done["error"]


def test_hello_without_image_runs_as_shell(client: httpx.Client) -> None:
    text = (EXAMPLES / "hello.yaml").read_text().replace("image: ubuntu:mantic\n", "")
    task = submit(client, text)
    done = finished(client, task["id"])
    assert done["state"] == "COMPLETED", done
    assert done["result"] == "hello world"
    assert done["startedAt"] <= done["completedAt"]


def test_json_task_with_env_pre_post_and_redaction(client: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "trail.txt"
    body = {
        "name": "with pre and post",
        "run": f'echo main:$WHO >> {out}; printf "$WHO"',
        "env": {"WHO": "tork", "DB_PASSWORD": "hunter2"},
        "pre": [{"name": "first", "run": f"echo pre >> {out}"}],
        "post": [{"name": "last", "cmd": ["sh", "-c", f"echo post >> {out}"]}],
    }
    task = submit(client, json.dumps(body), "application/json")
    assert task["env"] == {"WHO": "tork", "DB_PASSWORD": "[REDACTED]"}
    done = finished(client, task["id"])
    assert done["state"] == "COMPLETED", done
    assert done["result"] == "tork"
    assert out.read_text().split() == ["pre", "main:tork", "post"]


def test_failing_task_reports_its_error(client: httpx.Client) -> None:
    task = submit(client, "name: bad\nrun: echo oops >&2; exit 3\n")
    done = finished(client, task["id"])
    assert done["state"] == "FAILED"
    assert "exited with code 3" in done["error"]


def test_cancel_a_running_task(client: httpx.Client) -> None:
    task = submit(client, "name: sleepy\ncmd: [sleep, '30']\n")
    poll(lambda: client.get(f"/task/{task['id']}").json(), lambda t: t["state"] == "RUNNING")
    assert client.put(f"/task/{task['id']}/cancel").json() == {"status": "OK"}
    assert finished(client, task["id"])["state"] == "CANCELLED"
    again = client.put(f"/task/{task['id']}/cancel")
    assert again.status_code == 400
    assert again.json() == {"error": "task is not running"}


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        ("name: x\nrun: [unclosed\n", "text/yaml", "malformed YAML"),
        ('{"name": "x", "run": ', "application/json", "malformed JSON"),
        ("name: x\nrun: echo\n", "text/plain", "unknown content type"),
        ("name: x\n", "text/yaml", "needs an `image`, a `run` script or a `cmd`"),
        ("name: x\nrun: a\nretry: {limit: 20}\n", "text/yaml", "retry.limit"),
        ("- just\n- a list\n", "text/yaml", "must be a mapping"),
        ("name: j\ntasks: [{name: a, run: b}]\n", "text/yaml", "POST it to /jobs"),
    ],
)
def test_bad_task_input(client: httpx.Client, body: str, content_type: str, fragment: str) -> None:
    response = client.post("/task", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert fragment in json_of(response)["error"]


def test_missing_content_type(client: httpx.Client) -> None:
    response = client.post("/task", content=b"name: x\nrun: a\n", headers={"Content-Type": ""})
    assert response.status_code == 400
    assert response.json() == {"error": "missing content type"}


def test_unknown_task_ids(client: httpx.Client) -> None:
    for path in ("/task/0123456789abcdef0123456789abcdef", "/task/nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert "not found" in json_of(response)["error"]
    response = client.put("/task/nope/cancel")
    assert response.status_code == 404


JOB = """
name: greet job
inputs:
  who: world
tasks:
  - name: make greeting
    var: greeting
    env:
      WHO: "{{ inputs.who }}"
    run: printf "hello $WHO"
  - name: shout
    run: echo "{{ tasks.greeting }}" | tr a-z A-Z
"""


def test_job_runs_in_order_with_vars(client: httpx.Client) -> None:
    response = client.post("/jobs", content=JOB, headers={"Content-Type": "text/yaml"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["state"] == "PENDING"
    assert job["taskCount"] == 2
    done = poll(lambda: client.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in TERMINAL)
    assert done["state"] == "COMPLETED", done
    assert done["context"]["tasks"] == {"greeting": "hello world"}
    assert [t["result"] for t in done["execution"]] == ["hello world", "HELLO WORLD\n"]
    assert [t["position"] for t in done["execution"]] == [1, 2]
    one = client.get(f"/tasks/{done['execution'][1]['id']}").json()
    assert one["state"] == "COMPLETED" and one["jobId"] == job["id"]
    page = client.get("/jobs", params={"q": "greet"}).json()
    assert job["id"] in [j["id"] for j in page["items"]]
    assert page["number"] == 1 and page["totalItems"] >= 1


def test_job_restart_resumes_from_the_failed_task(client: httpx.Client, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    counter = tmp_path / "first-runs"
    doc = {
        "name": "restartable",
        "tasks": [
            {"name": "first", "run": f"echo x >> {counter}"},
            {"name": "needs flag", "cmd": ["test", "-f", str(flag)]},
        ],
    }
    job = client.post("/jobs", json=doc).json()
    failed = poll(lambda: client.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in TERMINAL)
    assert failed["state"] == "FAILED"
    assert failed["position"] == 2
    flag.write_text("go")
    assert client.put(f"/jobs/{job['id']}/restart").json() == {"status": "OK"}
    done = poll(lambda: client.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in TERMINAL)
    assert done["state"] == "COMPLETED", done
    assert counter.read_text().count("x") == 1  # the first task was not run again
    again = client.put(f"/jobs/{job['id']}/restart")
    assert again.status_code == 400
    assert "not failed or cancelled" in again.json()["message"]


def test_job_cancel_and_bad_input(client: httpx.Client) -> None:
    job = client.post(
        "/jobs", json={"name": "long", "tasks": [{"name": "s", "cmd": ["sleep", "30"]}]}
    ).json()
    assert client.put(f"/jobs/{job['id']}/cancel").json() == {"status": "OK"}
    done = poll(lambda: client.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in TERMINAL)
    assert done["state"] == "CANCELLED"
    assert client.put(f"/jobs/{job['id']}/cancel").status_code == 400
    missing = client.get("/jobs/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    assert client.get("/tasks/nope").status_code == 404
    bad = client.post(
        "/jobs", content="name: j\ntasks: []\n", headers={"Content-Type": "text/yaml"}
    )
    assert bad.status_code == 400 and "at least one task" in bad.json()["message"]
    bad = client.post("/jobs", content="{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["message"]


def test_job_imported_as_definition_and_run_natively(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/definitions", content=JOB, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["dialect"] == "tork"
    named = client.post(
        "/api/v1/definitions?dialect=tork",
        content=(EXAMPLES / "transcode.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    assert named.status_code == 201, named.text
    run = client.post(
        "/api/v1/runs", json={"definition": "greet job", "inputs": {"who": "tork"}}
    ).json()
    done = poll(
        lambda: client.get(f"/api/v1/runs/{run['id']}").json(),
        lambda r: r["status"] in ("completed", "failed"),
    )
    assert done["status"] == "completed", done
    assert done["tasks"][1]["output"]["stdout"] == "HELLO TORK\n"
