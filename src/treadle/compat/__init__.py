"""The seed dialects: gin, Tork, Mender workflows, Flower and Igor.

Each dialect is a subpackage ``treadle.compat.<name>`` with ``translate.py`` (``to_native(doc)``
and ``looks_like(doc)``) and, when it serves its own HTTP API, ``routes.py`` (``router``).
Nothing here lists the subpackages' contents: a dialect takes part by existing, so dialects
can be added independently.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

from treadle.errors import DefinitionError

# The dialect names the API accepts in ``?dialect=``; only those with a subpackage work.
DIALECTS = ("gin", "tork", "mender", "flower", "igor")


def available() -> list[str]:
    """Dialects that have a subpackage installed, in :data:`DIALECTS` order first."""
    found = {m.name for m in pkgutil.iter_modules(__path__) if m.ispkg}
    ordered = [d for d in DIALECTS if d in found]
    return ordered + sorted(found - set(ordered))


def _module(dialect: str, part: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{__name__}.{dialect}.{part}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{__name__}.{dialect}", f"{__name__}.{dialect}.{part}"):
            return None
        raise


def _looks_native(doc: Any) -> bool:
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    return isinstance(tasks, list) and all(isinstance(t, dict) and "kind" in t for t in tasks)


def detect(doc: Any) -> str:
    """The dialect a parsed document is written in; ``"native"`` when none claims it."""
    if _looks_native(doc):
        return "native"
    for dialect in available():
        module = _module(dialect, "translate")
        if module is not None and module.looks_like(doc):
            return dialect
    return "native"


def translator(dialect: str) -> Callable[[Any], dict[str, Any]]:
    """The ``to_native`` function of ``dialect``; DefinitionError names the known ones."""
    module = _module(dialect, "translate") if dialect.isidentifier() else None
    if module is None:
        known = ", ".join(["native", *available()])
        raise DefinitionError(f"unknown dialect {dialect!r}; known: {known}")
    to_native: Callable[[Any], dict[str, Any]] = module.to_native
    return to_native


def to_native(doc: Any, dialect: str | None = None) -> tuple[dict[str, Any], str]:
    """Translate ``doc`` (detected when ``dialect`` is None) into a native document."""
    name = dialect or detect(doc)
    if name == "native":
        if not isinstance(doc, dict):
            raise DefinitionError("a definition must be a mapping")
        return doc, name
    return translator(name)(doc), name


def routers() -> list[Any]:
    """Every dialect's ``fastapi.APIRouter``, imported on first use."""
    result = []
    for dialect in available():
        module = _module(dialect, "routes")
        if module is not None and hasattr(module, "router"):
            result.append(module.router)
    return result


def __getattr__(name: str) -> Any:
    # ROUTERS is computed on access so importing treadle.compat stays cheap (no FastAPI).
    if name == "ROUTERS":
        return routers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
