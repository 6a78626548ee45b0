"""CLI pieces that need no server: keygen, and `config show` hiding the key."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from treadle.cli.main import app
from treadle.secrets.vault import open_vault

runner = CliRunner()


def test_keygen_prints_a_usable_key() -> None:
    result = runner.invoke(app, ["secret", "keygen"])
    assert result.exit_code == 0, result.output
    vault = open_vault(result.stdout.strip(), "postgresql://db/x")
    assert vault is not None
    assert vault.decrypt("x", vault.encrypt("v")) == "v"


def test_config_show_hides_the_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = runner.invoke(app, ["secret", "keygen"]).stdout.strip()
    monkeypatch.setenv("TREADLE_SECRET_KEY", key)
    result = runner.invoke(app, ["config", "show", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["secret_key"] == "***"
    assert key not in result.stdout
