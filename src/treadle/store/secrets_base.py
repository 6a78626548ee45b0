"""Secret rows and the part of the store protocol that keeps them.

The store keeps only ciphertext: encryption and decryption happen in
:mod:`treadle.secrets.vault`, so no backend ever sees a value in the clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One stored secret: ``ciphertext`` is a Fernet token (text)."""

    name: str
    ciphertext: str
    created_at: datetime
    updated_at: datetime


class SecretStore(Protocol):
    """Named, encrypted values, addressed by name."""

    async def put_secret(self, name: str, ciphertext: str) -> SecretRecord:
        """Create or replace ``name``; ``created_at`` survives a replace."""

    async def get_secrets(self, names: Sequence[str]) -> dict[str, SecretRecord]:
        """The named secrets that exist (missing names are left out)."""

    async def list_secrets(self) -> list[SecretRecord]:
        """Every secret, by name."""

    async def delete_secret(self, name: str) -> None:
        """Remove ``name``; raises NotFound when there is none."""
