"""The `treadle` CLI: `run` in-process, and the client commands against a real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT, Server, treadle_cmd


def treadle(
    *args: str, cwd: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [*treadle_cmd(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_run_file_succeeds_with_summary(tmp_path: Path) -> None:
    result = treadle(
        "run", str(ROOT / "examples" / "hello.yaml"), "--input", "who=cli", cwd=tmp_path, check=True
    )
    assert "report: completed" in result.stdout
    assert "completed" in result.stdout.splitlines()[-1] or "report" in result.stdout


def test_run_file_exit_code_is_1_when_the_run_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('name: bad\ntasks:\n  - {name: x, kind: shell, command: ["false"]}\n')
    result = treadle("run", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert "x: failed" in result.stdout


def test_run_rejects_an_invalid_file_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "cycle.yaml"
    bad.write_text("name: c\ntasks:\n  - {name: a, kind: noop, depends_on: [a]}\n")
    result = treadle("run", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert "cycle" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_commands(server: Server, tmp_path: Path) -> None:
    srv = ["--server", server.url]
    defs = treadle("definitions", "list", *srv, "-o", "json", check=True)
    assert "hello" in [d["name"] for d in json.loads(defs.stdout)["items"]]
    wf = tmp_path / "echo.yaml"
    wf.write_text(
        "name: echo\ntasks:\n  - name: say\n    kind: shell\n"
        "    command: [echo, '{{ inputs.word }}']\n"
    )
    imported = treadle("definitions", "import", str(wf), *srv, check=True)
    assert "echo v1" in imported.stdout
    run_id = treadle("submit", "echo", "-i", "word=treadle", *srv, check=True).stdout.strip()
    assert len(run_id) == 36
    server.wait_run(run_id)
    status = treadle("status", run_id, *srv, "-o", "json", check=True)
    assert json.loads(status.stdout)["status"] == "completed"
    logs = treadle("logs", run_id, "say", "--follow", *srv, check=True)
    assert logs.stdout.strip() == "treadle"
    listed = treadle("list", *srv, "-o", "json", check=True)
    assert run_id in [r["id"] for r in json.loads(listed.stdout)["items"]]
    waited = treadle("submit", "echo", "-i", "word=again", "--wait", *srv, "-o", "json", check=True)
    assert json.loads(waited.stdout)["status"] == "completed"
    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\ntasks:\n  - {name: nap, kind: sleep, seconds: 30}\n")
    slow_id = treadle("submit", str(slow), *srv, check=True).stdout.strip()
    cancelled = treadle("cancel", slow_id, *srv, "-o", "json", check=True)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    missing = treadle("status", "nope", *srv)
    assert missing.returncode == 1
    assert "404" in missing.stderr and "nope" in missing.stderr


def test_unreachable_server_is_one_line_exit_2() -> None:
    result = treadle("list", "--server", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_command_prints_json_schema() -> None:
    result = treadle("schema", check=True)
    assert "tasks" in json.loads(result.stdout)["properties"]
