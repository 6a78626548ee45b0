"""Tork's command-line flags -> treadle settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import poll
from tests.conftest import ROOT, free_port
from treadle.compat.tork.cli import dsn_to_url, options_from_args, tork_main
from treadle.errors import ConfigError


def test_standalone_defaults_to_port_3000_and_every_role() -> None:
    options = options_from_args(["-mode", "standalone"])
    assert (options.host, options.port) == ("127.0.0.1", 3000)
    assert options.roles == {"api", "coordinator", "worker"}
    assert options.broker is None  # treadle's default, the in-process broker
    assert options.db is None


def test_distributed_flags() -> None:
    options = options_from_args(
        [
            "-mode",
            "worker",
            "-broker",
            "rabbitmq",
            "-rabbitmq-url",
            "amqp://guest:guest@127.0.0.1:5672",
            "-queue",
            "transcoding:3",
            "-queue",
            "default:10",
            "-datastore",
            "postgres",
            "-postgres-dsn",
            "host=db user=tork password=s3cret dbname=tork port=5433 sslmode=disable",
        ]
    )
    assert options.roles == {"worker"}
    assert options.broker == "amqp://guest:guest@127.0.0.1:5672"
    assert options.queues == {"transcoding": 3, "default": 10}
    assert options.db == "postgresql://tork:s3cret@db:5433/tork"


def test_double_dash_and_address() -> None:
    options = options_from_args(["--mode", "coordinator", "--address", ":8000"])
    assert options.roles == {"api", "coordinator"}
    assert (options.host, options.port) == ("0.0.0.0", 8000)


def test_bad_flags() -> None:
    assert tork_main(["-mode", "dancer"]) == 2
    assert tork_main([]) == 2
    assert tork_main(["-mode", "standalone", "-queue", "io:none"]) == 2
    with pytest.raises(ConfigError):
        options_from_args(["-mode", "standalone", "-datastore", "postgres"])
    with pytest.raises(ConfigError):
        dsn_to_url("host")


def test_tork_command_serves_the_task_api(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-m", "treadle.compat.tork.cli", "-mode", "standalone"]
    args += ["-address", f"127.0.0.1:{port}", "-db", f"sqlite:///{tmp_path / 't.db'}"]
    args += ["-queue", "default:2"]
    log = (tmp_path / "tork.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: _status(url), lambda s: s == 200, timeout=30)
        task = httpx.post(
            f"{url}/task",
            content="name: say hello\ncmd:\n- echo\n- -n\n- hello world\n",
            headers={"Content-Type": "text/yaml"},
        ).json()
        done = poll(
            lambda: httpx.get(f"{url}/task/{task['id']}").json(),
            lambda t: t["state"] in ("COMPLETED", "FAILED"),
        )
        assert done["state"] == "COMPLETED" and done["result"] == "hello world"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / "tork.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "tork.log").read_text()


def _status(url: str) -> int:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code
    except httpx.HTTPError:
        return 0
