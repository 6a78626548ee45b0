"""Small helpers for writing Jinja source from another template language.

Dialect translators turn their own placeholders into expressions over the native template
context; the literal text around them must not be read as Jinja by accident.
"""

from __future__ import annotations

import json
import re

_OPENERS = re.compile(r"\{(?=[{%#])")


def literal(value: str) -> str:
    """A Jinja string literal whose value is ``value``."""
    # JSON string syntax (ASCII only) is also valid Jinja string syntax.
    return json.dumps(value)


def escape_text(text: str) -> str:
    """Template text that renders to ``text`` exactly, even if it contains ``{{``, ``{%``..."""
    return _OPENERS.sub("{{ '{' }}", text)


def subscript(base: str, keys: list[str | int]) -> str:
    """``base["a"][0]``: subscripts look up keys first, so ``items`` is a key, not a method."""
    return base + "".join(f"[{k}]" if isinstance(k, int) else f"[{literal(k)}]" for k in keys)
