"""Restart safety: kill -9 of `treadle standalone` mid-run, start again, the run finishes."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import start_server

FAST_LEASES = {"TREADLE_LEASE_SECONDS": "2", "TREADLE_HEARTBEAT_SECONDS": "0.5"}


def test_kill_9_mid_run_then_restart_finishes_the_run(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    marker = tmp_path / "ran"
    definition = {
        "name": "survivor",
        "tasks": [
            {"name": "first", "kind": "noop"},
            {
                "name": "slow",
                "kind": "shell",
                "command": ["sh", "-c", f"echo x >> {marker}; sleep 3"],
            },
            {"name": "last", "kind": "log", "message": "done"},
        ],
    }
    server = start_server(tmp_path, db=db, env=FAST_LEASES)
    try:
        with server.client() as client:
            run_id = client.post("/api/v1/runs", json={"definition": definition}).json()["id"]
            deadline = time.monotonic() + 20
            while True:
                tasks = client.get(f"/api/v1/runs/{run_id}").json()["tasks"]
                # Running in the store and its body under way: an attempt is claimed before
                # its process starts, and the kill must come after both.
                if tasks[1]["status"] == "running" and marker.exists():
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
        server.kill9()
    finally:
        server.stop()
    again = start_server(tmp_path, db=db, env=FAST_LEASES)
    try:
        run = again.wait_run(run_id, timeout=60)
        assert run["status"] == "completed", run
        slow = run["tasks"][1]
        statuses = [a["status"] for a in slow["attempts"]]
        assert statuses[-1] == "completed"
        assert "lost" in statuses  # the killed attempt was swept, not forgotten
        assert all(t["status"] == "completed" for t in run["tasks"])
        with again.client() as client:
            running = client.get("/api/v1/runs", params={"status": "running"}).json()
        assert running["items"] == []
    finally:
        again.stop()
    assert marker.read_text().count("x") == 2  # at-least-once: the body ran again
