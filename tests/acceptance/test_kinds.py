"""Each task kind through a real `treadle standalone`: handlers from --import, outputs file,
HTTP accepted statuses and timeouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EchoServer, Server, start_server

HANDLERS = """
import treadle

@treadle.handler("add")
def add(a: int, b: int) -> dict:
    attempt = treadle.current_attempt()
    attempt.log(f"adding {a} and {b}")
    return {"sum": a + b, "attempt": attempt.attempt_id}

@treadle.handler("boom")
async def boom(reason: str) -> None:
    raise ValueError(reason)
"""


@pytest.fixture
def handler_server(tmp_path: Path) -> Any:
    (tmp_path / "my_handlers.py").write_text(HANDLERS)
    srv = start_server(
        tmp_path,
        "--import",
        "my_handlers",
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).parents[2] / 'src'}"},
    )
    try:
        yield srv
    finally:
        srv.stop()


def _run(server: Server, definition: dict[str, Any]) -> dict[str, Any]:
    with server.client() as client:
        response = client.post("/api/v1/runs", json={"definition": definition})
        assert response.status_code == 201, response.text
    return server.wait_run(response.json()["id"])


def test_python_handlers_from_an_imported_module(handler_server: Server) -> None:
    run = _run(
        handler_server,
        {
            "name": "py",
            "tasks": [
                {"name": "sum", "kind": "python", "handler": "add", "args": {"a": 2, "b": 3}},
                {
                    "name": "fail",
                    "kind": "python",
                    "handler": "boom",
                    "args": {"reason": "no luck"},
                    "depends_on": [],
                },
                {"name": "ghost", "kind": "python", "handler": "nobody", "depends_on": []},
            ],
        },
    )
    tasks = {t["name"]: t for t in run["tasks"]}
    assert tasks["sum"]["status"] == "completed"
    assert tasks["sum"]["output"]["sum"] == 5
    assert tasks["sum"]["output"]["attempt"] == tasks["sum"]["attempts"][0]["id"]
    assert tasks["fail"]["status"] == "failed"
    assert tasks["fail"]["error"] == "ValueError: no luck"
    assert "no handler registered as 'nobody'" in tasks["ghost"]["error"]
    assert "add" in tasks["ghost"]["error"]  # the message lists what is registered
    with handler_server.client() as client:
        log = client.get(f"/api/v1/runs/{run['id']}/tasks/sum/logs").text
    assert "adding 2 and 3" in log


def test_shell_outputs_file_env_cwd_and_script(server: Server, tmp_path: Path) -> None:
    run = _run(
        server,
        {
            "name": "sh",
            "tasks": [
                {
                    "name": "file",
                    "kind": "shell",
                    "shell": True,
                    "env": {"WHO": "env"},
                    "cwd": str(tmp_path),
                    "command": 'echo "{\\"who\\": \\"$WHO\\", \\"dir\\": \\"$(pwd)\\"}" > "$TREADLE_OUTPUTS";'  # noqa: E501
                    " echo not json",
                },
                {
                    "name": "argv",
                    "kind": "shell",
                    "command": ["printf", "%s", "$(id); rm -rf /"],
                    "depends_on": [],
                },
            ],
        },
    )
    tasks = {t["name"]: t for t in run["tasks"]}
    assert run["status"] == "completed", run
    assert tasks["file"]["output"]["json"] == {"who": "env", "dir": str(tmp_path)}
    assert tasks["argv"]["output"]["stdout"] == "$(id); rm -rf /"


def test_http_accepted_statuses_and_timeouts(server: Server, echo_server: EchoServer) -> None:
    run = _run(
        server,
        {
            "name": "web",
            "tasks": [
                {
                    "name": "teapot",
                    "kind": "http",
                    "url": f"{echo_server.url}/status/418",
                    "accept": [418],
                    "depends_on": [],
                },
                {
                    "name": "refused",
                    "kind": "http",
                    "url": f"{echo_server.url}/status/503",
                    "depends_on": [],
                },
                {
                    "name": "put",
                    "kind": "http",
                    "method": "put",
                    "url": f"{echo_server.url}/x",
                    "headers": {"X-Test": "1"},
                    "body": "raw",
                    "depends_on": [],
                },
                {
                    "name": "unreachable",
                    "kind": "http",
                    "url": "http://127.0.0.1:9/",
                    "connect_timeout": "500ms",
                    "depends_on": [],
                },
            ],
        },
    )
    tasks = {t["name"]: t for t in run["tasks"]}
    assert tasks["teapot"]["status"] == "completed"
    assert tasks["teapot"]["output"]["status"] == 418
    assert tasks["refused"]["status"] == "failed"
    assert "answered 503, expected 2xx" in tasks["refused"]["error"]
    assert tasks["put"]["output"]["json"]["method"] == "PUT"
    assert tasks["put"]["output"]["json"]["body"] == "raw"
    put_request = next(r for r in echo_server.requests if r["path"] == "/x")
    assert put_request["headers"]["X-Test"] == "1"
    assert tasks["unreachable"]["status"] == "failed"
    assert "failed" in tasks["unreachable"]["error"] or "timed out" in tasks["unreachable"]["error"]
