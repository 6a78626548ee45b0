"""Keys and encryption: settings, the SQLite key file, rotation, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.errors import ConfigError
from treadle.secrets.vault import (
    SecretsUnavailable,
    generate_key,
    key_file_for,
    open_vault,
    require,
)


def test_key_from_settings_round_trips() -> None:
    vault = open_vault(generate_key(), "postgresql://db/x")
    assert vault is not None
    token = vault.encrypt("hunter2")
    assert "hunter2" not in token
    assert vault.decrypt("pw", token) == "hunter2"


def test_rotation_new_key_first_still_reads_old_tokens() -> None:
    old, new = generate_key(), generate_key()
    before = open_vault(old, "redis://x")
    assert before is not None
    token = before.encrypt("value")
    after = open_vault(f"{new},{old}", "redis://x")
    assert after is not None
    assert after.decrypt("pw", token) == "value"
    only_new = open_vault(new, "redis://x")
    assert only_new is not None
    assert only_new.decrypt("pw", after.encrypt("value")) == "value"
    with pytest.raises(SecretsUnavailable, match="secret 'pw' cannot be decrypted"):
        only_new.decrypt("pw", token)


def test_malformed_key_fails_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"not a Fernet key.*treadle secret keygen"):
        open_vault("not-a-key", "postgresql://db/x")


def test_no_key_on_a_server_store_says_how_to_set_one() -> None:
    assert open_vault(None, "postgresql://db/x") is None
    assert open_vault(None, "sqlite:///:memory:") is None
    with pytest.raises(SecretsUnavailable) as caught:
        require(None)
    assert "TREADLE_SECRET_KEY" in caught.value.message
    assert "\n" not in caught.value.message


def test_sqlite_key_file_is_made_on_first_use_and_kept(tmp_path: Path) -> None:
    db = tmp_path / "data" / "treadle.db"
    path = key_file_for(f"sqlite:///{db}")
    assert path == db.with_name("treadle.db.secret-key")
    vault = open_vault(None, f"sqlite:///{db}")
    assert vault is not None
    assert not path.exists()  # nothing is written until a secret is
    token = vault.encrypt("v")
    assert path.stat().st_mode & 0o777 == 0o600
    again = open_vault(None, str(db))  # a plain path names the same store
    assert again is not None
    assert again.decrypt("x", token) == "v"
