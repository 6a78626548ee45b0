"""Run workflows inside your own tests: ``run_local(workflow, inputs, handlers={...}) -> Run``.

The run executes on the embedded engine (coordinator + worker in this process, SQLite in a
temporary folder, the in-process broker), so it goes through the same scheduler, retries,
templates and runtimes as production. Handlers can be swapped for fakes for the duration::

    from treadle.testing import run_local

    def test_nightly():
        run = run_local(nightly, {"day": "mon"}, handlers={"send_report": lambda **kw: "sent"})
        assert run.status == "completed"
        assert run.task("notify").output == "sent"
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from treadle.sdk.errors import WaitTimeout
from treadle.sdk.models import Run
from treadle.worker import handlers as registry

__all__ = ["arun_local", "fake_handlers", "run_local"]


def _document(definition: Any) -> dict[str, Any]:
    from treadle.api.definitions_io import to_native
    from treadle.model.parse import load_document

    to_document = getattr(definition, "to_document", None)
    if callable(to_document):
        return dict(to_document())
    if isinstance(definition, Path):
        definition = load_document(definition.read_text())
    elif isinstance(definition, str):
        definition = load_document(definition)
    if not isinstance(definition, Mapping):
        raise TypeError(
            "run_local takes a @treadle.workflow, a definition mapping, YAML/JSON text or a Path"
        )
    doc, _ = to_native(dict(definition), None)
    return dict(doc)


@contextmanager
def fake_handlers(fakes: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Register ``fakes`` under their names for the duration; the originals come back after."""
    saved = {name: registry._REGISTRY.get(name) for name in fakes}
    try:
        for name, fake in fakes.items():
            func = getattr(fake, "func", fake)  # a @treadle.task function: its plain function
            registry.handler(name)(func)
        yield
    finally:
        for name, original in saved.items():
            if original is None:
                registry.unregister(name)
            else:
                registry._REGISTRY[name] = original


async def arun_local(
    definition: Any,
    inputs: Mapping[str, Any] | None = None,
    *,
    handlers: Mapping[str, Callable[..., Any]] | None = None,
    timeout: float = 60.0,
    queues: Mapping[str, int] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Run:
    """The asyncio form of :func:`run_local` (for ``async def`` tests)."""
    from treadle.api.views import run_view
    from treadle.config import load_settings
    from treadle.engine.node import Node
    from treadle.model.states import RunStatus

    doc = _document(definition)
    with (
        tempfile.TemporaryDirectory(prefix="treadle-test-") as scratch,
        fake_handlers(handlers or {}),
    ):
        options: dict[str, Any] = {
            "db": f"sqlite:///{scratch}/run.db",
            "broker": "memory://",
            "heartbeat_seconds": 1.0,
            "queues": dict(queues or {}) or None,
            "definitions": [],
            "imports": [],
            **dict(settings or {}),
        }
        node = Node(load_settings(None, **options), ("coordinator", "worker"))
        service = await node.start()
        try:
            run = await service.start_run(doc, dict(inputs or {}), actor="test")
            deadline = time.monotonic() + timeout
            while not RunStatus((run := await service.get_run(run.id)).status).terminal:
                if time.monotonic() > deadline:
                    await service.cancel_run(run.id, "run_local timeout")
                    raise WaitTimeout(f"run {run.id} is still {run.status} after {timeout}s")
                await asyncio.sleep(0.02)
            tasks = await service.get_tasks(run.id)
            attempts = await service.get_attempts(run.id)
            return Run.from_json(run_view(run, tasks, attempts))
        finally:
            await node.stop()


def run_local(
    definition: Any,
    inputs: Mapping[str, Any] | None = None,
    *,
    handlers: Mapping[str, Callable[..., Any]] | None = None,
    timeout: float = 60.0,
    queues: Mapping[str, int] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Run:
    """Run ``definition`` to the end on a private embedded engine and return the finished run.

    ``definition`` is a ``@treadle.workflow``, a native (or seed dialect) mapping, YAML/JSON text
    or a Path. ``handlers`` maps handler names to fakes used instead of the registered ones;
    ``settings`` overrides engine settings (``lease_seconds``, ``delivery_limit``...).
    Inside a running event loop use ``await arun_local(...)``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            arun_local(
                definition,
                inputs,
                handlers=handlers,
                timeout=timeout,
                queues=queues,
                settings=settings,
            )
        )
    raise RuntimeError("run_local() was called inside an event loop; use `await arun_local(...)`")
