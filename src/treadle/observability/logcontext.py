"""Run, task and attempt ids on every log line that concerns them.

The coordinator binds the run id while it advances a run; the worker binds run, task and
attempt ids while it runs an attempt. :class:`ContextFilter` copies whatever is bound onto each
log record (an explicit ``extra={"task_id": ...}`` wins), so the JSON and text formatters can
show them without every call site passing them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("run_id", "task_id", "attempt_id")

_VARS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"treadle_log_{name}", default=None) for name in FIELDS
}


@contextmanager
def bind(
    run_id: str | None = None, task_id: str | None = None, attempt_id: str | None = None
) -> Iterator[None]:
    """Tag log lines written inside the block (this task and what it awaits) with these ids."""
    values = {"run_id": run_id, "task_id": task_id, "attempt_id": attempt_id}
    tokens = [(_VARS[k], _VARS[k].set(v)) for k, v in values.items() if v is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str]:
    """The ids bound now."""
    return {k: v for k, var in _VARS.items() if (v := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Adds the bound ids to each record as attributes (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


def record_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids a record carries, in :data:`FIELDS` order."""
    return {k: str(v) for k in FIELDS if (v := getattr(record, k, None)) is not None}
