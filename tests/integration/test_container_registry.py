"""Pull policies and private-registry credentials from secrets, end to end (issue 6, item 4).

A real run on an embedded node (coordinator + worker) pulls from the private registry that
scripts/setup-registry.sh starts: distribution's registry with htpasswd basic auth over TLS on
127.0.0.1. Each test pushes the offline busybox test image there under a unique name and removes
it from the engine, so only a pull can bring it back. With CI set, a registry or engine that
cannot be set up fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound

from tests.integration.conftest import SQLITE_ONLY, node_with_secrets, wait_run
from tests.integration.test_container_runtime import IMAGE, docker_client, engine_host
from tests.services import run_setup_script
from treadle.engine.node import Node
from treadle.engine.service import EngineService
from treadle.store.records import RunRecord, TaskRecord

pytestmark = [pytest.mark.services, pytest.mark.timeout(600), SQLITE_ONLY]

__all__ = ["docker_client", "engine_host"]  # fixtures, imported to share the one-time setup

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-registry.sh"
REGISTRY_DIR = Path(os.environ.get("TREADLE_REGISTRY_DIR", "/var/lib/treadle-registry"))
REGISTRY = f"127.0.0.1:{os.environ.get('TREADLE_REGISTRY_PORT', '5799')}"
WRONG_PASSWORD = "not-the-Registry-pw-42"
CREDENTIALS = {"username": "{{ secrets.REG_USER }}", "password": "{{ secrets.REG_PASS }}"}


@dataclass(frozen=True)
class Registry:
    address: str
    username: str
    password: str


@pytest.fixture(scope="session")
def registry(engine_host: str) -> Registry:
    """Run the setup script once; fail in CI, skip elsewhere, when no registry can be had."""
    run_setup_script(SETUP, "private registry")
    username, password = (REGISTRY_DIR / "credentials").read_text().strip().split(":", 1)
    return Registry(REGISTRY, username, password)


def _is_local(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except ImageNotFound:
        return False
    return True


def _untag(client: docker.DockerClient, image: str) -> None:
    if _is_local(client, image):
        client.images.remove(image)  # only this name: the busybox image keeps its others


@pytest.fixture
def pushed(registry: Registry, docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique image in the private registry, absent from the engine."""
    repository = f"{registry.address}/treadle-test/pull-{uuid.uuid4().hex[:12]}"
    image = f"{repository}:v1"
    assert docker_client.images.get(IMAGE).tag(repository, "v1")
    try:
        auth = {"username": registry.username, "password": registry.password}
        events = list(
            docker_client.api.push(repository, tag="v1", stream=True, decode=True, auth_config=auth)
        )
        errors = [e["error"] for e in events if isinstance(e, dict) and e.get("error")]
        assert not errors, f"push of {image} failed: {errors}"
        _untag(docker_client, image)
        assert not _is_local(docker_client, image)
        yield image
    finally:
        _untag(docker_client, image)


@pytest.fixture
async def node(store_url: str, engine_host: str, registry: Registry) -> AsyncIterator[Node]:
    secrets = {
        "REG_USER": registry.username,
        "REG_PASS": registry.password,
        "REG_WRONG": WRONG_PASSWORD,
    }
    async with node_with_secrets(
        store_url, secrets, container_host=engine_host, container_stop_grace=1
    ) as started:
        yield started


def _service(node: Node) -> EngineService:
    assert node.service is not None
    return node.service


async def _run(node: Node, task: dict[str, Any]) -> tuple[RunRecord, TaskRecord, str]:
    """Run one container task; its run, its task and everything stored about it, as text."""
    service = _service(node)
    definition = {
        "name": "pull",
        "tasks": [{"name": "box", "kind": "container", "depends_on": [], **task}],
    }
    run = await service.start_run(definition, {})
    done = await wait_run(service, run.id, timeout=240)
    (record,) = await service.get_tasks(run.id)
    logs = "".join(chunk.text for chunk in await service.read_logs(record.id))
    stored = "\n".join(
        [
            repr(done),
            repr(record),
            logs,
            repr(await service.get_attempts(run.id)),
            repr(await service.list_events(run.id)),
        ]
    )
    return done, record, stored


async def test_pull_always_with_credentials_from_secrets(
    node: Node, pushed: str, registry: Registry, docker_client: docker.DockerClient
) -> None:
    done, task, stored = await _run(
        node,
        {
            "image": pushed,
            "pull": "always",
            "registry": CREDENTIALS,
            "run": "echo ran from the private registry",
        },
    )
    assert done.status == "completed", task.error
    assert task.output["stdout"] == "ran from the private registry\n"
    assert _is_local(docker_client, pushed)  # it was absent: the pull brought it
    assert f"pulling image {pushed}" in stored
    assert registry.password not in stored
    # The definition and the rendered spec hold references, not the value.
    assert "secrets.REG_PASS" in repr(task.spec)


async def test_wrong_password_fails_naming_the_image_and_the_login(
    node: Node, pushed: str, docker_client: docker.DockerClient
) -> None:
    done, task, stored = await _run(
        node,
        {
            "image": pushed,
            "pull": "always",
            "registry": {**CREDENTIALS, "password": "{{ secrets.REG_WRONG }}"},
            "cmd": ["true"],
            # Not retried: the same credentials would be refused again.
            "retry": {"max_attempts": 3, "initial": "1s"},
        },
    )
    assert done.status == "failed"
    error = task.error or ""
    assert f"could not pull image {pushed!r}" in error
    assert f"registry {REGISTRY} refused the username and password" in error
    assert "authentication" in error
    assert task.attempt_count == 1
    assert WRONG_PASSWORD not in stored
    assert not _is_local(docker_client, pushed)


async def test_private_image_without_credentials_fails_asking_for_them(
    node: Node, pushed: str
) -> None:
    done, task, _ = await _run(node, {"image": pushed, "cmd": ["true"]})  # pull: if-missing
    assert done.status == "failed"
    error = task.error or ""
    assert f"could not pull image {pushed!r}" in error
    assert f"registry {REGISTRY} requires authentication" in error
    assert "registry: {username, password}" in error


async def test_pull_never_fails_naming_the_absent_image(
    node: Node, pushed: str, docker_client: docker.DockerClient
) -> None:
    done, task, stored = await _run(
        node, {"image": pushed, "pull": "never", "registry": CREDENTIALS, "cmd": ["true"]}
    )
    assert done.status == "failed"
    error = task.error or ""
    assert f"image {pushed!r} is not present on the container engine" in error
    assert "pull policy is 'never'" in error
    assert "pulling image" not in stored
    assert not _is_local(docker_client, pushed)


async def test_if_missing_uses_the_local_image_without_pulling(
    node: Node, pushed: str, registry: Registry, docker_client: docker.DockerClient
) -> None:
    # Bring the private image in once, then run it with no credentials: the registry would
    # refuse such a pull (see the test above), so completing proves no pull was tried.
    first, task, _ = await _run(
        node, {"image": pushed, "pull": "always", "registry": CREDENTIALS, "cmd": ["true"]}
    )
    assert first.status == "completed", task.error
    done, task, stored = await _run(node, {"image": pushed, "run": "echo local"})
    assert done.status == "completed", task.error
    assert task.output["stdout"] == "local\n"
    assert "pulling image" not in stored
    # The same local image with `always` does go to the registry, and is refused there.
    again, task, _ = await _run(node, {"image": pushed, "pull": "always", "cmd": ["true"]})
    assert again.status == "failed"
    assert f"registry {REGISTRY} requires authentication" in (task.error or "")


async def test_if_missing_does_not_reach_an_unreachable_registry(
    node: Node, docker_client: docker.DockerClient
) -> None:
    # Port 9 (discard) has no registry: any pull from it fails at once.
    repository = f"127.0.0.1:9/treadle-test/local-{uuid.uuid4().hex[:12]}"
    image = f"{repository}:v1"
    assert docker_client.images.get(IMAGE).tag(repository, "v1")
    try:
        done, task, stored = await _run(node, {"image": image, "run": "echo local"})
        assert done.status == "completed", task.error
        assert "pulling image" not in stored
        again, task, _ = await _run(node, {"image": image, "pull": "always", "cmd": ["true"]})
        assert again.status == "failed"
        error = task.error or ""
        assert f"could not pull image {image!r}" in error
        assert "127.0.0.1:9" in error
    finally:
        _untag(docker_client, image)
