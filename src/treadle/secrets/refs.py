"""``{{ secrets.NAME }}`` in templates: kept as a reference when the coordinator renders a task,
replaced by the value only in the worker, right before the task runs.

The coordinator renders task specs ahead of time and stores the result, which must never hold a
secret's value. So at render time ``secrets.NAME`` yields a marker,
``[[treadle-secret:<nonce>:NAME]]``, with a nonce drawn afresh for every rendering pass. Every
value a template can reach (inputs, outputs of earlier tasks, fan-out items) was fixed before
the nonce existed, so no data can forge a marker: only a template that names a secret makes
one. The worker looks for markers with the nonce stored in the spec (``secrets_nonce``), reads
and decrypts the named secrets, and substitutes them.

A secret can be interpolated (``"Bearer {{ secrets.TOKEN }}"``) but not transformed by a filter
at render time (``| upper``, ``| b64encode``): transform it in the task (a shell pipeline, the
handler). A marker changed by a filter fails the task instead of running with a wrong value.
"""

from __future__ import annotations

import re
import secrets as _random
from collections.abc import Callable, Mapping
from typing import Any

from treadle.errors import TemplateError

NONCE_FIELD = "secrets_nonce"
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}"
_NAME = re.compile(rf"^{NAME_PATTERN}$")


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def marker(nonce: str, name: str) -> str:
    return f"[[treadle-secret:{nonce}:{name}]]"


def _marker_re(nonce: str) -> re.Pattern[str]:
    return re.compile(rf"\[\[treadle-secret:{re.escape(nonce)}:({NAME_PATTERN})\]\]")


class DeferredSecrets:
    """The ``secrets`` object templates see while the coordinator renders."""

    def __init__(self, nonce: str | None = None) -> None:
        self.nonce = nonce or _random.token_hex(16)
        self.uses = 0

    def _ref(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        if not valid_name(name):
            raise TemplateError(
                f"bad secret name {name!r}: use letters, digits, '_', '.' and '-' "
                "(starting with a letter, digit or '_')"
            )
        self.uses += 1
        return marker(self.nonce, name)

    def __getattr__(self, name: str) -> str:
        return self._ref(name)

    def __getitem__(self, name: str) -> str:
        return self._ref(str(name))

    def __repr__(self) -> str:
        return "<secrets>"


def stamp(rendered: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Record the nonce in a rendered spec that holds markers (free when none were made)."""
    deferred = context.get("secrets")
    if not isinstance(deferred, DeferredSecrets) or deferred.uses == 0:
        return rendered
    if _contains(rendered, deferred.nonce):
        rendered[NONCE_FIELD] = deferred.nonce
    return rendered


def _contains(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value.lower()  # a filter may have upper-cased the marker
    if isinstance(value, dict):
        return any(_contains(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, needle) for v in value)
    return False


def referenced(value: Any, nonce: str) -> set[str]:
    """Names of the secrets whose markers ``value`` holds."""
    pattern = _marker_re(nonce)
    names: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, str):
            names.update(pattern.findall(item))
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)

    walk(value)
    return names


def substitute(
    value: Any, nonce: str, values: Mapping[str, str], on_mangled: Callable[[str], None]
) -> Any:
    """``value`` with every marker replaced by its secret; ``on_mangled(where)`` is called for
    a string still holding the nonce afterwards (a marker a filter changed)."""
    pattern = _marker_re(nonce)
    lowered = nonce.lower()

    def walk(item: Any, where: str) -> Any:
        if isinstance(item, str):
            if lowered not in item.lower():
                return item
            out = pattern.sub(lambda m: values[m.group(1)], item)
            # Outside well-formed markers the nonce can only come from a marker that a filter
            # transformed (data cannot hold a nonce drawn after it was fixed).
            if lowered in pattern.sub("", item).lower():
                on_mangled(where)
            return out
        if isinstance(item, dict):
            return {k: walk(v, f"{where}.{k}" if where else k) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(item)]
        return item

    return walk(value, "")
