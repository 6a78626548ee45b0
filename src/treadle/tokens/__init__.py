"""API tokens: scopes, issuing and checking bearer tokens, and which route needs which scope."""

from treadle.tokens.scopes import SCOPES, Scope, parse_scope
from treadle.tokens.service import issue_token, revoke_token, verify_token

__all__ = ["SCOPES", "Scope", "issue_token", "parse_scope", "revoke_token", "verify_token"]
