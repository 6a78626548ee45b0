"""Encryption of stored secrets with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Keys come from the ``secret_key`` setting (``TREADLE_SECRET_KEY``): one or more Fernet keys,
comma-separated. The first encrypts; every key decrypts, so a key is rotated by putting the new
one first, setting each secret again (it is then encrypted with the new key), then dropping the
old one.

Without the setting, a process whose store is a SQLite file keeps a generated key in a file next
to the database (``<database>.secret-key``, mode 0600): the laptop setup needs nothing, and the
key never sits inside the database it protects. Other stores need the setting on every API and
worker process; without it setting a secret fails with a message saying how to configure one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from treadle.errors import ConfigError, TreadleError
from treadle.store.factory import url_scheme

KEY_FILE_SUFFIX = ".secret-key"
HOW_TO_SET = (
    "set TREADLE_SECRET_KEY (or secret_key in the config file) on the API and every worker "
    "to a key made by `treadle secret keygen`"
)


class SecretsUnavailable(TreadleError):
    """Secrets cannot be encrypted or decrypted here (no key, or the wrong key)."""

    code = "secrets_unavailable"
    status = 503


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def key_file_for(db_url: str) -> Path | None:
    """Where a SQLite file store keeps its generated key; None for other stores."""
    scheme = url_scheme(db_url)
    if scheme is not None and scheme not in ("sqlite", "sqlite+aiosqlite"):
        return None
    from treadle.store.sqlite import sqlite_path

    path = sqlite_path(db_url)
    if path == ":memory:":
        return None
    return Path(path).expanduser().with_name(Path(path).name + KEY_FILE_SUFFIX)


def _read_or_create_key_file(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together agree on the first one's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key() + "\n")
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"secret key file {path} is empty; delete it or {HOW_TO_SET}")
    return key


class Vault:
    """Encrypts and decrypts secret values with one or more Fernet keys.

    A key file is read (or created) on first use, so a store that never holds a secret never
    gets a key file.
    """

    def __init__(self, load_keys: Callable[[], list[str]], source: str) -> None:
        self._load_keys = load_keys
        self._cached: MultiFernet | None = None
        self.source = source

    def check(self) -> Vault:
        """Load the keys now (a malformed key fails here, in one line)."""
        self._fernet()
        return self

    def _fernet(self) -> MultiFernet:
        if self._cached is None:
            keys = self._load_keys()
            if not keys:
                raise ConfigError(f"{self.source} holds no key")
            try:
                self._cached = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
            except (ValueError, UnicodeEncodeError) as exc:
                raise ConfigError(
                    f"the secret key from {self.source} is not a Fernet key (32 url-safe "
                    "base64-encoded bytes); make one with `treadle secret keygen`"
                ) from exc
        return self._cached

    def encrypt(self, value: str) -> str:
        return self._fernet().encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, name: str, token: str) -> str:
        try:
            return self._fernet().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretsUnavailable(
                f"secret {name!r} cannot be decrypted with the key from {self.source} "
                "(was the key changed? keep the old key after the new one, comma-separated, "
                "until every secret has been set again)"
            ) from exc


def open_vault(secret_key: str | None, db_url: str) -> Vault | None:
    """The vault for these settings, or None when no key is configured (and none can be kept).

    Raises ConfigError for a malformed ``secret_key``, so a bad setting fails at start.
    """
    if secret_key:
        keys = [k.strip() for k in secret_key.split(",") if k.strip()]
        return Vault(lambda: keys, "TREADLE_SECRET_KEY / secret_key").check()
    path = key_file_for(db_url)
    if path is None:
        return None
    key_path = path
    return Vault(lambda: [_read_or_create_key_file(key_path)], f"key file {path}")


def require(vault: Vault | None) -> Vault:
    """``vault``, or a one-line error saying how to configure a key."""
    if vault is None:
        raise SecretsUnavailable(f"no secret key configured: {HOW_TO_SET}")
    return vault
