"""The connection to a container engine (Docker, or Podman's Docker-compatible service).

Everything here wraps the blocking ``docker`` SDK; callers reach it through
:func:`asyncio.to_thread`. This module knows how to find the engine, tell whether it answers,
make an image present under a pull policy, and remove what treadle left behind by label.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
from docker.auth import resolve_repository_name
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.utils import parse_repository_tag

from treadle.runtime.base import TaskFailed

PODMAN_SOCKET = Path("/run/podman/podman.sock")
DOCKER_DEFAULT_HOST = "unix:///var/run/docker.sock"
PING_TIMEOUT_SECONDS = 3.0
API_TIMEOUT_SECONDS = 120.0
# Pinned so no client construction talks to the engine (version "auto" would), and because
# Podman 4's compat API speaks at most 1.41, which every current Docker Engine still accepts.
API_VERSION = "1.41"

LABEL_RUN = "treadle.run"
LABEL_TASK = "treadle.task"
LABEL_ATTEMPT = "treadle.attempt"
LABEL_OWNER = "treadle.owner"
LABEL_ROLE = "treadle.role"

PULL_POLICIES = ("never", "if-missing", "always")

# How Docker, Podman and registries word a refused or missing login in a pull error.
_AUTH_REFUSED = re.compile(
    r"unauthori[sz]ed|authentication required|incorrect username or password"
    r"|invalid username/password|access to the resource is denied|pull access denied",
    re.IGNORECASE,
)


def resolve_host(settings: Mapping[str, Any]) -> str:
    """The engine address: setting ``container_host``, else ``$DOCKER_HOST``, else Podman's
    root socket when it exists, else Docker's default socket."""
    configured = settings.get("container_host") or os.environ.get("DOCKER_HOST")
    if configured:
        return str(configured)
    if PODMAN_SOCKET.exists():
        return f"unix://{PODMAN_SOCKET}"
    return DOCKER_DEFAULT_HOST


def engine_error_reason(exc: BaseException) -> str:
    """A one-line cause for an engine error, without the SDK's URL noise."""
    if isinstance(exc, APIError) and exc.explanation:
        return str(exc.explanation)
    cause: BaseException = exc
    # requests wraps the socket error a few levels deep; the innermost says what happened.
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    text = str(cause) or type(cause).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _unix_socket_problem(path: str, timeout: float) -> str | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError as exc:
            return f"cannot connect to {path}: {exc.strerror or exc}"
    return None


def is_gone(exc: BaseException) -> bool:
    """Whether an engine error means the object no longer exists.

    Podman sometimes answers 500 "no such container" instead of 404 while a removal is under way.
    """
    if isinstance(exc, NotFound):
        return True
    return isinstance(exc, APIError) and "no such" in str(exc.explanation or "").lower()


def registry_of(image: str) -> str:
    """The registry (host, with its port if any) an image reference pulls from."""
    repository, _ = parse_repository_tag(image)
    try:
        return str(resolve_repository_name(repository)[0])
    except DockerException:
        return str(repository).split("/", 1)[0]


def pull_failure(image: str, reason: str, auth: Mapping[str, str] | None) -> TaskFailed:
    """The failure of a pull: a refused login is named as such and is not retried."""
    password = (auth or {}).get("password")
    if password:
        # The engine has no reason to repeat it, but a literal (non-secret) password would
        # not be masked by the worker: never let it reach a message.
        reason = reason.replace(password, "***")
    if not _AUTH_REFUSED.search(reason):
        return TaskFailed(f"could not pull image {image!r}: {reason}", error_type="ImagePullFailed")
    registry = registry_of(image)
    if auth:
        advice = (
            f"registry {registry} refused the username and password in the task's `registry` "
            "(authentication failed); check them (or the secrets they come from)"
        )
    else:
        advice = (
            f"registry {registry} requires authentication (or has no such image) and the task "
            "gives no credentials; set `registry: {username, password}` on the task, "
            "preferably from secrets"
        )
    return TaskFailed(
        f"could not pull image {image!r}: {advice}: {reason}",
        retryable=False,
        error_type="RegistryAuthFailed",
    )


class Engine:
    """One engine address with a lazily made SDK client (safe to share between threads)."""

    def __init__(self, host: str, api_timeout: float = API_TIMEOUT_SECONDS) -> None:
        self.host = host
        self.api_timeout = api_timeout
        self._client: docker.DockerClient | None = None
        self._stream_api: docker.APIClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        # No network traffic here: the SDK only connects on the first request.
        if self._client is None:
            self._client = docker.DockerClient(
                base_url=self.host, timeout=int(self.api_timeout), version=API_VERSION
            )
        return self._client

    @property
    def stream_api(self) -> docker.APIClient:
        """A client without a read timeout, for output streams that may stay quiet for hours."""
        if self._stream_api is None:
            self._stream_api = docker.APIClient(
                base_url=self.host, timeout=None, version=API_VERSION
            )
        return self._stream_api

    def ping_blocking(self, timeout: float = PING_TIMEOUT_SECONDS) -> str | None:
        """None when the engine answers ``/_ping`` within ``timeout``; else why not."""
        if self.host.startswith("unix://"):
            # Checked by hand first: the SDK leaks its socket when a unix connect fails.
            problem = _unix_socket_problem(self.host[len("unix://") :], timeout)
            if problem:
                return problem
        try:
            api = docker.APIClient(
                base_url=self.host, timeout=max(1, round(timeout)), version=API_VERSION
            )
        except DockerException as exc:
            return engine_error_reason(exc)
        try:
            api.ping()
        except Exception as exc:  # any failure to answer means "not usable", whatever its type
            return engine_error_reason(exc)
        finally:
            api.close()
        return None

    async def ping(self, timeout: float = PING_TIMEOUT_SECONDS) -> str | None:
        """Async :meth:`ping_blocking`, bounded by ``timeout`` even if the socket stalls."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.ping_blocking, timeout), timeout + 1.0
            )
        except TimeoutError:
            return f"no answer within {timeout:g}s"

    # --- images ----------------------------------------------------------------------------

    def ensure_image_blocking(
        self,
        image: str,
        policy: str,
        auth: Mapping[str, str] | None,
        log: Callable[[str], None],
    ) -> None:
        """Make ``image`` present according to ``policy``; raise TaskFailed when it cannot be."""
        if policy not in PULL_POLICIES:
            raise TaskFailed(
                f"unknown pull policy {policy!r}; use one of {', '.join(PULL_POLICIES)}",
                retryable=False,
                error_type="InvalidSpec",
            )
        if policy != "always" and self._has_image(image):
            return
        if policy == "never":
            raise TaskFailed(
                f"image {image!r} is not present on the container engine and the pull policy "
                "is 'never'; load the image on the worker's engine or use pull: if-missing",
                retryable=False,
                error_type="ImageNotFound",
            )
        self._pull(image, auth, log)

    def _has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except ImageNotFound:
            return False
        except APIError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def _pull(self, image: str, auth: Mapping[str, str] | None, log: Callable[[str], None]) -> None:
        repository, tag = parse_repository_tag(image)
        log(f"pulling image {image}\n")
        try:
            for event in self.client.api.pull(
                repository,
                tag=tag or "latest",
                stream=True,
                decode=True,
                # Sent as the X-Registry-Auth header: it overrides whatever login the engine
                # or the worker's ~/.docker/config.json holds for that registry.
                auth_config={"username": auth["username"], "password": auth["password"]}
                if auth
                else None,
            ):
                if isinstance(event, dict) and event.get("error"):
                    raise pull_failure(image, str(event["error"]), auth)
        except APIError as exc:
            raise pull_failure(image, engine_error_reason(exc), auth) from exc
        # Some engines report a failed pull only by the image still being absent.
        if not self._has_image(image):
            raise TaskFailed(
                f"could not pull image {image!r}: the engine did not store it",
                error_type="ImagePullFailed",
            )

    # --- cleanup ---------------------------------------------------------------------------

    def remove_labelled_blocking(self, labels: Mapping[str, str]) -> tuple[int, int]:
        """Force-remove every container, then every volume, carrying all of ``labels``.

        Returns (containers removed, volumes removed). Objects that vanish meanwhile are fine.
        """
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        containers = 0
        for container in self.client.containers.list(all=True, filters=filters):
            try:
                container.remove(force=True, v=True)
                containers += 1
            except APIError as exc:
                if not is_gone(exc):
                    raise
        volumes = 0
        for volume in self.client.volumes.list(filters=filters):
            try:
                volume.remove(force=True)
                volumes += 1
            except APIError as exc:
                if not is_gone(exc):
                    raise
        return containers, volumes

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._stream_api is not None:
            self._stream_api.close()
            self._stream_api = None
