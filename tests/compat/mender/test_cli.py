"""`treadle mender`: Mender's config keys, and a server started from them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.compat.mender.test_translate import README_WORKFLOW
from tests.conftest import ROOT, free_port
from treadle.compat.mender.cli import env_key, options_from, read_config, split_listen
from treadle.errors import ConfigError


def test_config_keys_map_to_roles_and_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "listen: 127.0.0.1:9090\nworkflows_path: /srv/workflows\nconcurrency: 4\n"
        "nats_uri: nats://nats:4222\nmongo-url: mongodb://m:27017\n"
    )
    server = options_from(["-config", str(config), "server", "--automigrate"], {})
    assert server.roles == {"api", "coordinator"}
    assert (server.host, server.port) == ("127.0.0.1", 9090)
    assert server.definitions == ["/srv/workflows"]
    assert server.queues == {"default": 4}
    assert server.broker == "nats://nats:4222"
    assert server.automigrate is True
    worker = options_from(["--config", str(config), "worker"], {"WORKFLOWS_CONCURRENCY": "2"})
    assert worker.roles == {"worker"} and worker.queues == {"default": 2}
    assert worker.automigrate is None


def test_defaults_and_environment() -> None:
    assert split_listen(":8080") == ("0.0.0.0", 8080)
    assert env_key("nats_uri") == "WORKFLOWS_NATS_URI"
    assert read_config(None, {"WORKFLOWS_LISTEN": ":7000"}) == {"listen": ":7000"}
    options = options_from(["server"], {})
    assert (options.host, options.port, options.definitions) == ("0.0.0.0", 8080, [])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("listen: nowhere\n", "listen must look like"),
        ("concurrency: lots\n", "concurrency"),
        ("- a\n", "mapping"),
        ("concurrency: 0\n", "at least 1"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        options_from(["-config", str(config), "server"], {})
    assert fragment in info.value.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        options_from(["-config", str(tmp_path / "none.yaml"), "server"], {})


def test_server_loads_workflows_path_and_accepts_jobs(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "decommission_device.json").write_text(README_WORKFLOW)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nworkflows_path: {folder}\ndb: {tmp_path / 't.db'}\n"
    )
    code = (
        "import sys; from treadle.compat.mender.cli import mender_main; "
        "sys.exit(mender_main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = tmp_path / "mender.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "-config", str(config), "server", "--automigrate"],
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
                if httpx.get(f"{url}/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        inputs = {"device_id": "d", "request_id": "r", "authorization": "a"}
        started = httpx.post(f"{url}/api/workflow/decommission_device", json=inputs)
        assert started.status_code == 201, started.text
        job = httpx.get(f"{url}/api/workflow/decommission_device/{started.json()['id']}").json()
        assert job["status"] in ("pending", "processing")  # no worker runs in this process
    finally:
        proc.terminate()
        proc.wait(20)
