"""The four scopes of an API token; each includes the ones before it."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    """``read`` < ``submit`` < ``operate`` < ``admin``."""

    READ = "read"
    SUBMIT = "submit"
    OPERATE = "operate"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return SCOPES.index(self)

    def allows(self, needed: Scope) -> bool:
        """Whether a token of this scope may do what ``needed`` guards."""
        return self.rank >= needed.rank


SCOPES: tuple[Scope, ...] = (Scope.READ, Scope.SUBMIT, Scope.OPERATE, Scope.ADMIN)


def parse_scope(text: str) -> Scope:
    """``"operate"`` -> :attr:`Scope.OPERATE`; ValueError naming the known scopes otherwise."""
    try:
        return Scope(text.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in SCOPES)
        raise ValueError(f"unknown scope {text!r}: use one of {known}") from None
