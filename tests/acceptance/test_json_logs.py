"""`--log-format json`: every line of the process is a JSON object, and lines about a task carry
the run, task and attempt they concern."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import start_server


def test_every_line_is_json_and_task_lines_carry_their_ids(tmp_path: Path) -> None:
    marker = tmp_path / "second-time"
    definition = {
        "name": "json-logs",
        "tasks": [
            {
                "name": "flaky",
                "kind": "shell",
                # Fails the first time (exit 75), succeeds when retried.
                "command": [
                    "sh",
                    "-c",
                    f'if [ -e "{marker}" ]; then echo ok; else : > "{marker}"; exit 75; fi',
                ],
                "retry": {"max_attempts": 3, "initial": 0.1, "backoff": "fixed"},
            }
        ],
    }
    # Debug level: a completed attempt's line is a debug line (the store keeps every attempt).
    server = start_server(tmp_path, "--log-format", "json", env={"TREADLE_LOG_LEVEL": "debug"})
    try:
        with server.client() as client:
            created = client.post("/api/v1/runs", json={"definition": definition, "inputs": {}})
            assert created.status_code == 201, created.text
            run = server.wait_run(created.json()["id"])
    finally:
        server.stop()
    assert run["status"] == "completed", run
    (task,) = run["tasks"]
    attempts = [a["id"] for a in task["attempts"]]
    assert len(attempts) == 2, task

    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"not a JSON line: {line!r}") from exc
    about_task = [r for r in records if "flaky" in r["message"] or r.get("task_id") == task["id"]]
    for record in about_task:
        print(record)
        assert record.get("run_id") == run["id"], record
        assert record.get("task_id") == task["id"], record
        assert record.get("attempt_id") in attempts, record
    # Both attempts were logged: the failure (with its retry) and the success.
    failed = [r for r in about_task if r["attempt_id"] == attempts[0]]
    succeeded = [r for r in about_task if r["attempt_id"] == attempts[1]]
    assert any("will be retried" in r["message"] for r in failed), failed
    assert any("completed" in r["message"] for r in succeeded), succeeded
    # Lines about the run (but no task) carry the run id.
    assert any(
        r.get("run_id") == run["id"] and "task_id" not in r and "completed" in r["message"]
        for r in records
    )
