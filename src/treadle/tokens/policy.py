"""Which scope each route needs (docs/security.md shows the same table).

Rules are tried in order; the first whose method and path match decides. ``None`` means the
route is open: health checks, the UI (it has its own login, and its writes go through this
API with the visitor's token), the API docs, and the signed webhook trigger (its signature is
its credential). A request that no rule names needs ``read`` for GET and HEAD and ``admin``
for anything else, so a route added without a decision is closed rather than open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from treadle.tokens.scopes import Scope

_CONTROL_OPS = "pause|unpause|kill|retry|skip|rerun"
_ID = "[^/]+"
_ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_READS = frozenset({"GET", "HEAD"})
_WRITES = _ANY - _READS


@dataclass(frozen=True, slots=True)
class Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    scope: Scope | None  # None: open


def _rule(methods: frozenset[str] | str, path: str, scope: Scope | None) -> Rule:
    wanted = frozenset({methods}) if isinstance(methods, str) else methods
    return Rule(wanted, re.compile(f"^{path}$"), scope)


RULES: tuple[Rule, ...] = (
    # open
    _rule(_READS, "/(healthz|readyz)", None),
    _rule(_READS, "/(health|status)", None),  # Tork's and Mender's health checks
    _rule(_ANY, "/(ui(/.*)?)?", None),
    _rule(_READS, "/(docs|redoc|docs/oauth2-redirect|openapi.json)", None),
    _rule("POST", f"/api/v1/hooks/{_ID}", None),
    # admin
    _rule(_ANY, "/api/v1/(tokens|secrets|admin)(/.*)?", Scope.ADMIN),
    _rule(_WRITES, "/api/v1/(workers|prune)(/.*)?", Scope.ADMIN),
    # operate: control operations, schedules, hooks
    _rule("POST", f"/api/v1/(runs|layers|tasks)/{_ID}/({_CONTROL_OPS}|cancel)", Scope.OPERATE),
    _rule("PATCH", f"/api/v1/({_CONTROL_OPS})", Scope.OPERATE),
    _rule(_WRITES, "/api/v1/(schedules|hooks)(/.*)?", Scope.OPERATE),
    _rule("PUT", f"/(task|jobs)/{_ID}/cancel", Scope.OPERATE),  # Tork
    _rule("PUT", f"/jobs/{_ID}/restart", Scope.OPERATE),  # Tork
    _rule("POST", f"/flower/flows/{_ID}/rerun", Scope.OPERATE),  # Flower
    # submit: definitions, runs, signals, new tasks
    _rule("POST", "/api/v1/(definitions|runs)", Scope.SUBMIT),
    _rule("POST", f"/api/v1/runs/{_ID}/signals/{_ID}", Scope.SUBMIT),
    _rule("POST", f"/api/v1/layers/{_ID}/tasks", Scope.SUBMIT),
    _rule("POST", "/api/v1/(jobs|layers|tasks)", Scope.SUBMIT),  # Igor
    _rule(_WRITES, "/wf(/.*)?", Scope.SUBMIT),  # gin
    _rule("POST", "/(task|jobs)", Scope.SUBMIT),  # Tork
    _rule("POST", f"/api(/v1)?/workflow/{_ID}(/batch)?", Scope.SUBMIT),  # Mender
    _rule("POST", "/api/v1/metadata/workflows", Scope.SUBMIT),  # Mender
    _rule("POST", f"/register/{_ID}/?", Scope.SUBMIT),  # Flower
    # everything else that only reads: runs, logs, events, workers, metrics, dialect views
    _rule(_READS, "/.*", Scope.READ),
)


def matching_rule(method: str, path: str) -> Rule | None:
    """The first rule for this request, or None when no rule names it."""
    method = method.upper()
    for rule in RULES:
        if method in rule.methods and rule.pattern.match(path):
            return rule
    return None


def required_scope(method: str, path: str) -> Scope | None:
    """The scope a request needs; None when the route is open."""
    rule = matching_rule(method, path)
    if rule is None:
        return Scope.ADMIN  # an undecided write: closed
    return rule.scope
