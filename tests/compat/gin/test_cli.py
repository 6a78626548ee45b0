"""`treadle gin`: gin's flags, and an api node started from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.compat.gin.test_translate import README_WORKFLOW
from tests.conftest import ROOT, free_port
from treadle.compat.gin.cli import build_parser, options_from


def test_modes_map_to_roles_and_urls_to_store_and_broker() -> None:
    options, redis_url = options_from(
        ["-mode", "master", "-amqp", "amqp://u:p@mq/vh", "-redis", "redis://r:6379/2"]
    )
    assert options.roles == {"coordinator"}
    assert (options.broker, options.db, redis_url) == (
        "amqp://u:p@mq/vh",
        "redis://r:6379/2",
        "redis://r:6379/2",
    )
    assert options_from(["--mode=job"])[0].roles == {"worker"}
    api, _ = options_from(["-mode", "api", "-host", "127.0.0.1", "-port", "9000"])
    assert (api.roles, api.host, api.port) == ({"api"}, "127.0.0.1", 9000)
    assert options_from([])[0].port == 8080  # gin's default API port
    assert options_from([])[0].roles == {"worker"}  # gin's default mode is job
    job, _ = options_from(["-mode", "job", "-import", "a.steps", "--import", "b"])
    assert job.imports == ["a.steps", "b"] and job.flags()["imports"] == ["a.steps", "b"]
    assert options_from([])[0].flags()["imports"] is None  # treadle's own default


def test_bad_flags_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["-mode", "boss"])
    assert info.value.code == 2


def test_api_node_serves_gin_routes(tmp_path: Path) -> None:
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "do_stuff.json").write_text(README_WORKFLOW)
    port = free_port()
    code = (
        "import sys; from treadle.compat.gin.cli import gin_main; sys.exit(gin_main(sys.argv[1:]))"
    )
    args = [
        "-mode",
        "api",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-amqp",
        "memory://",
        "-db",
        str(tmp_path / "t.db"),
        "-definitions",
        str(folder),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = tmp_path / "gin.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        started = httpx.post(f"{url}/wf/", json={"Name": "do stuff"})
        assert started.status_code == 200, started.text
        doc = httpx.get(f"{url}/wf/{started.json()['UUID']}").json()
        # An api node alone starts runs; a master (coordinator) and job nodes move them on.
        assert doc["State"] == "started"
        assert doc["Workflow"]["Steps"][0]["Context"]["url"] == "{{.Defaults.echo_url}}"
        assert json.loads(README_WORKFLOW)["name"] == doc["Workflow"]["Name"]
    finally:
        proc.terminate()
        proc.wait(20)
