"""Scopes and the route policy: which scope each route needs, decided for every route."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from treadle.api.app import create_app
from treadle.api.auth import announce
from treadle.config import Settings
from treadle.tokens.policy import matching_rule, required_scope
from treadle.tokens.scopes import SCOPES, Scope, parse_scope


def test_each_scope_includes_the_ones_before_it() -> None:
    assert [s.value for s in SCOPES] == ["read", "submit", "operate", "admin"]
    for i, held in enumerate(SCOPES):
        for j, needed in enumerate(SCOPES):
            assert held.allows(needed) is (i >= j), (held, needed)


def test_parse_scope_names_the_known_ones() -> None:
    assert parse_scope(" Operate ") is Scope.OPERATE
    with pytest.raises(ValueError, match="unknown scope 'root': use one of read, submit"):
        parse_scope("root")


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/health", None),  # Tork
        ("GET", "/status", None),  # Mender
        ("GET", "/", None),
        ("POST", "/ui/act", None),  # the UI forwards to the API with the session token
        ("GET", "/docs", None),
        ("POST", "/api/v1/hooks/deploy", None),  # signed webhook trigger
        ("GET", "/api/v1/runs", "read"),
        ("GET", "/api/v1/runs/r1/tasks/t/logs", "read"),
        ("GET", "/metrics", "read"),
        ("GET", "/api/v1/hooks", "read"),
        ("GET", "/mon/", "read"),  # gin: host details
        ("GET", "/api/v1/tokens", "admin"),
        ("POST", "/api/v1/definitions", "submit"),
        ("POST", "/api/v1/runs", "submit"),
        ("POST", "/api/v1/runs/r1/signals/go", "submit"),
        ("POST", "/api/v1/layers/l1/tasks", "submit"),
        ("POST", "/wf/", "submit"),
        ("POST", "/wf", "submit"),
        ("POST", "/task", "submit"),
        ("POST", "/jobs", "submit"),
        ("POST", "/api/workflow/deploy", "submit"),
        ("POST", "/api/v1/workflow/deploy/batch", "submit"),
        ("POST", "/api/v1/metadata/workflows", "submit"),
        ("POST", "/register/7", "submit"),
        ("POST", "/register/7/", "submit"),
        ("POST", "/api/v1/jobs", "submit"),  # Igor
        ("POST", "/api/v1/tasks", "submit"),  # Igor
        ("POST", "/api/v1/runs/r1/cancel", "operate"),
        ("POST", "/api/v1/runs/r1/pause", "operate"),
        ("POST", "/api/v1/layers/l1/skip", "operate"),
        ("POST", "/api/v1/tasks/t1/rerun", "operate"),
        ("PATCH", "/api/v1/kill", "operate"),
        ("POST", "/api/v1/schedules", "operate"),
        ("DELETE", "/api/v1/schedules/nightly", "operate"),
        ("POST", "/api/v1/schedules/nightly/pause", "operate"),
        ("POST", "/api/v1/hooks", "operate"),
        ("DELETE", "/api/v1/hooks/deploy", "operate"),
        ("PUT", "/task/t1/cancel", "operate"),
        ("PUT", "/jobs/j1/cancel", "operate"),
        ("PUT", "/jobs/j1/restart", "operate"),
        ("POST", "/flower/flows/3/rerun", "operate"),
        ("POST", "/api/v1/tokens", "admin"),
        ("DELETE", "/api/v1/tokens/ci", "admin"),
        ("GET", "/api/v1/secrets", "admin"),
        ("POST", "/api/v1/workers/w1/drain", "admin"),
        ("POST", "/api/v1/somewhere-new", "admin"),  # undecided writes are closed
    ],
)
def test_required_scope(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == (Scope(scope) if scope else None)


def test_every_route_of_the_app_is_decided(tmp_path: Path) -> None:
    """A new route must get an explicit rule (docs/security.md lists them)."""
    app = create_app(Settings(db=f"sqlite:///{tmp_path / 'x.db'}"))
    paths = app.openapi()["paths"]
    assert "/api/v1/tokens" in paths and "/jobs" in paths and "/wf/" in paths
    undecided = []
    for template, operations in paths.items():
        # {op} stands for a control operation; any other parameter for some id
        path = re.sub(r"\{[^}]+\}", "x", template.replace("{op}", "pause"))
        for method in operations:
            if matching_rule(method, path) is None:
                undecided.append(f"{method.upper()} {template}")
    assert undecided == []


def test_announce_warns_loudly_off_loopback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="treadle.api.auth")
    announce(Settings(host="0.0.0.0", auth="none"))
    announce(Settings(host="127.0.0.1", auth="none"))
    announce(Settings(host="0.0.0.0", auth="token"))
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels[0][0] == "WARNING" and "authentication is OFF" in levels[0][1]
    assert "0.0.0.0" in levels[0][1]
    assert levels[1] == (
        "INFO",
        "authentication is off (--auth none); listening on loopback only",
    )
    assert levels[2][0] == "INFO" and "authentication is on" in levels[2][1]


def test_auth_setting_accepts_only_none_or_token() -> None:
    from treadle.config import load_settings
    from treadle.errors import ConfigError

    assert load_settings(auth="token").auth == "token"
    with pytest.raises(ConfigError, match="auth"):
        load_settings(auth="tokens")
