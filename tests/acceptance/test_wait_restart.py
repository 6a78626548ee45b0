"""Durable waits through `kill -9` of `treadle standalone`: timer and signal both finish."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import Server, start_server


def _wait_running(server: Server, run_id: str, task: str) -> None:
    deadline = time.monotonic() + 20
    with server.client() as client:
        while True:
            run = client.get(f"/api/v1/runs/{run_id}").json()
            status = {t["name"]: t["status"] for t in run["tasks"]}
            waiting = client.get(f"/api/v1/runs/{run_id}/signals").json()["waiting"]
            if status[task] == "running" and waiting:
                return
            assert time.monotonic() < deadline, run
            time.sleep(0.05)


def test_timer_and_signal_waits_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    definition = {
        "name": "durable",
        "tasks": [
            {"name": "hold", "kind": "wait", "seconds": 2},
            {"name": "gate", "kind": "wait", "signal": "go"},
            {"name": "say", "kind": "log", "message": "{{ tasks.gate.output.who }}"},
        ],
    }
    server = start_server(tmp_path, db=db)
    try:
        with server.client() as client:
            run_id = client.post("/api/v1/runs", json={"definition": definition}).json()["id"]
        _wait_running(server, run_id, "hold")
        server.kill9()
    finally:
        server.stop()
    time.sleep(2.2)  # the timer comes due while no process runs
    again = start_server(tmp_path, db=db)
    try:
        _wait_running(again, run_id, "gate")
        again.kill9()
    finally:
        again.stop()
    third = start_server(tmp_path, db=db)
    try:
        with third.client() as client:
            sent = client.post(f"/api/v1/runs/{run_id}/signals/go", json={"who": "ops"})
            assert sent.status_code == 201, sent.text
        run = third.wait_run(run_id, timeout=30)
        assert run["status"] == "completed", run
        tasks = {t["name"]: t for t in run["tasks"]}
        hold = tasks["hold"]
        woke = datetime.fromisoformat(hold["output"]["woke_at"])
        assert woke >= datetime.fromisoformat(hold["output"]["until"])
        assert woke <= datetime.now(UTC)
        assert tasks["gate"]["output"] == {"who": "ops"}
        assert tasks["say"]["output"] == {"message": "ops"}
        assert all(t["attempts"] == [] for t in (hold, tasks["gate"]))
    finally:
        third.stop()
