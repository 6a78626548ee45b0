"""How a failed image pull is reported: a refused login is named, never retried, never leaks."""

from __future__ import annotations

import pytest

from treadle.runtime.container_engine import pull_failure, registry_of

AUTH = {"username": "bot", "password": "s3cret-pw"}


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("127.0.0.1:5799/team/app:v1", "127.0.0.1:5799"),
        ("registry.example/org/tool@sha256:" + "a" * 64, "registry.example"),
        ("localhost:5000/app", "localhost:5000"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


@pytest.mark.parametrize(
    "reason",
    [
        # Podman (containers/image) against distribution's registry.
        "reading manifest v1 in 127.0.0.1:5799/app: unauthorized: authentication required",
        # Docker Engine, wrong password and private repository.
        "Head https://registry.example/v2/org/app/manifests/v1: unauthorized: "
        "incorrect username or password",
        "pull access denied for org/app, repository does not exist or may require 'docker login'",
        "denied: requested access to the resource is denied",
    ],
)
def test_refused_login_is_named_and_not_retried(reason: str) -> None:
    with_auth = pull_failure("registry.example/org/app:v1", reason, AUTH)
    assert with_auth.error_type == "RegistryAuthFailed"
    assert with_auth.retryable is False
    assert with_auth.message.startswith(
        "could not pull image 'registry.example/org/app:v1': registry registry.example "
    )
    assert "refused the username and password" in with_auth.message
    without = pull_failure("registry.example/org/app:v1", reason, None)
    assert "requires authentication" in without.message
    assert "registry: {username, password}" in without.message


def test_other_failures_stay_retryable_pull_failures() -> None:
    reason = 'pinging container registry 127.0.0.1:9: Get "https://127.0.0.1:9/v2/": refused'
    failed = pull_failure("127.0.0.1:9/app:v1", reason, AUTH)
    assert failed.error_type == "ImagePullFailed"
    assert failed.retryable is True
    assert failed.message == f"could not pull image '127.0.0.1:9/app:v1': {reason}"


def test_the_password_never_reaches_the_message() -> None:
    reason = "unauthorized: login bot:s3cret-pw refused"
    failed = pull_failure("registry.example/org/app:v1", reason, AUTH)
    assert "s3cret-pw" not in failed.message
    assert "bot:***" in failed.message
