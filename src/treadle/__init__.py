"""treadle: a durable workflow engine.

Public names:

- :class:`Client`, :class:`AsyncClient`: the API client (``treadle.sdk``).
- :func:`workflow`, :func:`task` and the builders :func:`shell`, :func:`http`, :func:`log`,
  :func:`sleep`, :func:`noop`: workflows written in Python (``treadle.workflows``).
- :func:`handler` registers a Python handler; :func:`current_attempt` tells a handler which
  attempt it serves.
"""

from __future__ import annotations

__version__ = "0.1.0"

from treadle.sdk import AsyncClient, Client
from treadle.worker.handlers import current_attempt, handler
from treadle.workflows import http, log, noop, shell, sleep, task, workflow

__all__ = [
    "AsyncClient",
    "Client",
    "__version__",
    "current_attempt",
    "handler",
    "http",
    "log",
    "noop",
    "shell",
    "sleep",
    "task",
    "workflow",
]
