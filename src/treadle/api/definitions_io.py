"""Turn posted or imported definition text into stored definitions, in any dialect."""

from __future__ import annotations

from typing import Any

from treadle.engine.service import EngineService
from treadle.errors import DefinitionError
from treadle.model.parse import load_document
from treadle.store.records import DefinitionRecord


def to_native(doc: Any, dialect: str | None) -> tuple[Any, str]:
    """Translate a document of ``dialect`` (detected when None) into a native one."""
    try:
        from treadle import compat
    except ImportError:  # pragma: no cover - compat package always ships
        compat = None  # type: ignore[assignment]
    if compat is None or not hasattr(compat, "detect"):
        if dialect not in (None, "native"):
            raise DefinitionError(f"unknown dialect {dialect!r}; known: native")
        return doc, "native"
    name = dialect or compat.detect(doc)
    if name == "native":
        return doc, "native"
    translator = getattr(compat, "translator")  # noqa: B009 - present once dialects land
    return translator(name)(doc), name


async def import_definition_text(
    service: EngineService, text: str | bytes, content_type: str | None, dialect: str | None
) -> DefinitionRecord:
    """Parse, translate and store one definition."""
    doc = load_document(text, content_type)
    native, name = to_native(doc, dialect)
    source = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return await service.create_definition(native, source=source, dialect=name)
