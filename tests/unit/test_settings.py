"""Settings precedence: flags > TREADLE_* environment > --config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.cli.serve import build_settings
from treadle.errors import ConfigError


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TREADLE_GRACE_SECONDS", "TREADLE_LEASE_SECONDS", "TREADLE_QUEUES", "TREADLE_DB"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "treadle.yaml"
    path.write_text(
        "grace_seconds: 11\nlease_seconds: 12\nheartbeat_seconds: 3\n"
        "queues: {io: 2}\nbroker: redis://file\n"
    )
    return path


def test_the_file_fills_in_what_nothing_else_sets(config: Path) -> None:
    settings = build_settings(str(config))
    assert (settings.grace_seconds, settings.lease_seconds, settings.heartbeat_seconds) == (
        11,
        12,
        3,
    )
    assert settings.queues == {"io": 2}
    assert settings.broker == "redis://file"
    assert settings.delivery_limit == 5  # default: in no source


def test_environment_beats_the_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADLE_GRACE_SECONDS", "21")
    monkeypatch.setenv("TREADLE_QUEUES", '{"slow": 1}')
    settings = build_settings(str(config))
    assert settings.grace_seconds == 21
    assert settings.queues == {"slow": 1}
    assert settings.lease_seconds == 12  # still from the file


def test_flags_beat_the_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADLE_GRACE_SECONDS", "21")
    monkeypatch.setenv("TREADLE_BROKER", "amqp://env")
    settings = build_settings(
        str(config), grace_seconds=31, broker="nats://flag", queue=["a:3", "b:1"]
    )
    assert settings.grace_seconds == 31
    assert settings.broker == "nats://flag"
    assert settings.queues == {"a": 3, "b": 1}
    # A flag left out (None) does not hide the lower sources.
    assert build_settings(str(config), grace_seconds=None).grace_seconds == 21


def test_a_bad_value_names_the_setting(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADLE_GRACE_SECONDS", "-1")
    with pytest.raises(ConfigError, match="grace_seconds"):
        from treadle.config import load_settings

        load_settings(str(config))


def test_a_queue_flag_replaces_the_environments_queues(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREADLE_QUEUES", '{"slow": 1}')
    assert build_settings(str(config), queue=["a:2"]).queues == {"a": 2}
    assert build_settings(str(config)).queues == {"slow": 1}
