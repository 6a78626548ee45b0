"""Which function runs which task kind."""

from __future__ import annotations

from treadle.runtime.base import RuntimeFn
from treadle.runtime.builtin import run_log, run_noop, run_sleep
from treadle.runtime.http import run_http
from treadle.runtime.python import run_python
from treadle.runtime.shell import run_shell

_RUNTIMES: dict[str, RuntimeFn] = {
    "shell": run_shell,
    "http": run_http,
    "python": run_python,
    "log": run_log,
    "sleep": run_sleep,
    "noop": run_noop,
}


def runtime_for(kind: str) -> RuntimeFn | None:
    return _RUNTIMES.get(kind)


def register_runtime(kind: str, fn: RuntimeFn) -> None:
    """Add or replace the runtime of a task kind (container, dialect kinds...)."""
    _RUNTIMES[kind] = fn


def known_kinds() -> list[str]:
    return sorted(_RUNTIMES)
