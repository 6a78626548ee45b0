"""Which broker queue a task is dispatched on: container tasks only reach capable workers.

A task that needs a container engine (``kind: container``, or a ``pre``/``post`` step of that
kind) is queued on ``<queue>.containers`` instead of ``<queue>``. Workers whose container
runtime answered at start serve both names with one shared concurrency per queue; workers
without one serve ``<queue>`` only, so they never claim a container task. A container task
with no capable worker around stays ``queued`` until one starts. The derived name is stored
as the task's ``queue``, so every broker and store routes it with no special support.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONTAINER_SUFFIX = ".containers"


def needs_containers(spec: Mapping[str, Any]) -> bool:
    """Whether running ``spec`` needs a container engine on the worker."""
    if spec.get("kind") == "container":
        return True
    steps = [*(spec.get("pre") or []), *(spec.get("post") or [])]
    return any(isinstance(s, Mapping) and s.get("kind") == "container" for s in steps)


def dispatch_queue(queue: str, spec: Mapping[str, Any]) -> str:
    """The queue a task with ``spec`` (declared on ``queue``) is dispatched on."""
    if needs_containers(spec) and not queue.endswith(CONTAINER_SUFFIX):
        return queue + CONTAINER_SUFFIX
    return queue


def container_queue(queue: str) -> str:
    """The container twin of a queue a worker serves."""
    return queue + CONTAINER_SUFFIX


def declared_queue(queue: str) -> str:
    """The queue the task declared (rate limits and operators think in these)."""
    return queue.removesuffix(CONTAINER_SUFFIX)
