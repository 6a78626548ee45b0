"""The CLI's control commands and `treadle events` against a real HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from tests.integration.conftest import settings_for
from treadle.api.app import create_app
from treadle.cli.main import app as cli


@pytest.fixture
def server(store_url: str) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings_for(store_url), roles=("api", "coordinator", "worker"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


def _wait(url: str, run_id: str, want: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/api/v1/runs/{run_id}").json()
        if run["status"] == want:
            return dict(run)
        assert time.monotonic() < deadline, f"run is {run['status']}, wanted {want}"
        time.sleep(0.05)


def test_cli_pause_kill_and_events(server: str, tmp_path: Path) -> None:
    doc = {"name": "cli", "tasks": [{"name": "s", "kind": "sleep", "seconds": 30}]}
    run = httpx.post(f"{server}/api/v1/runs", json={"definition": doc}).json()
    running = _wait(server, run["id"], "running")
    runner = CliRunner()
    stale = runner.invoke(cli, ["pause", "run", run["id"], "--etag", "0", "--server", server])
    assert stale.exit_code == 1 and "409" in stale.output
    fresh = runner.invoke(
        cli,
        [
            "pause",
            "run",
            run["id"],
            "--etag",
            str(running["etag"]),
            "--server",
            server,
            "-o",
            "json",
        ],
    )
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.output)["op"] == "pause"
    _wait(server, run["id"], "paused")
    killed = runner.invoke(cli, ["kill", "run", run["id"], "--server", server])
    assert killed.exit_code == 0, killed.output
    assert "kill: run" in killed.output
    _wait(server, run["id"], "cancelled")
    events = runner.invoke(cli, ["events", run["id"], "--server", server, "-o", "json"])
    assert events.exit_code == 0, events.output
    kinds = [e["kind"] for e in json.loads(events.output)["items"]]
    assert kinds.index("run.pause") < kinds.index("run.kill")
    bad = runner.invoke(cli, ["skip", "widget", "x", "--server", server])
    assert bad.exit_code != 0 and "unknown kind" in bad.output
