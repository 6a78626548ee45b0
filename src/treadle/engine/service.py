"""The engine facade used by the API, the CLI and the compat dialects.

One :class:`EngineService` per process wraps the store and broker and, in roles that run them,
the coordinator and worker. Every entry point (REST, CLI, dialect routes, SDK) goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from treadle.broker.base import Broker
from treadle.engine.callbacks import callbacks_for
from treadle.engine.control import Control
from treadle.engine.coordinator import Coordinator
from treadle.engine.extensions import sync_definition_triggers
from treadle.engine.layer_tasks import add_layer_tasks
from treadle.engine.runs import RunOptions, build_tasks, create_run
from treadle.errors import Conflict, InvalidState, NotFound
from treadle.model.definition import Definition
from treadle.model.parse import definition_from_document
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.base import Store
from treadle.store.records import (
    AttemptRecord,
    DefinitionRecord,
    EventRecord,
    LogChunk,
    RunRecord,
    TaskChange,
    TaskRecord,
)
from treadle.worker.worker import Worker

log = logging.getLogger(__name__)


def new_id() -> str:
    return str(uuid.uuid4())


def _canonical(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "version"}
    return json.dumps(body, sort_keys=True)


class EngineService:
    """Definitions, runs and control operations over one store and broker."""

    def __init__(
        self, store: Store, broker: Broker, queue_rates: Mapping[str, float] | None = None
    ) -> None:
        self.store = store
        self.broker = broker
        # The queues' rate limits as the coordinators apply them; known, they let a new run's
        # first pass be made as it is created (engine/first_pass.py). None: unknown, leave it.
        self.queue_rates = None if queue_rates is None else dict(queue_rates)
        self.coordinator: Coordinator | None = None
        self.workers: list[Worker] = []
        self.control = Control(store, broker, kill=self.kill_local)

    def kill_local(self, task_ids: Sequence[str]) -> None:
        """Stop attempts of these tasks running in this process's workers, at once."""
        for worker in self.workers:
            worker.cancel_tasks(task_ids)

    async def add_layer_tasks(
        self, layer_id: str, specs: Sequence[dict[str, Any]], actor: str = "api"
    ) -> list[TaskRecord]:
        """Add tasks to a layer that has not started (see :mod:`treadle.engine.layer_tasks`)."""
        return await add_layer_tasks(self.store, self.broker, layer_id, specs, actor)

    # -- definitions ----------------------------------------------------------------------
    async def create_definition(
        self, doc: dict[str, Any], *, source: str = "", dialect: str = "native"
    ) -> DefinitionRecord:
        """Validate and store a native definition document (see the module docs for versions)."""
        definition = definition_from_document(doc)
        document = definition.to_document()
        explicit = "version" in doc
        try:
            latest = await self.store.get_definition(definition.name)
        except NotFound:
            latest = None
        if latest is not None:
            same = _canonical(latest.document) == _canonical(document)
            if explicit and definition.version == latest.version:
                if same:
                    return latest
                raise Conflict(
                    f"definition {definition.name!r} version {definition.version} exists with "
                    "other content; give a new version",
                    details={"latest": latest.version},
                )
            if not explicit:
                if same:
                    return latest
                document["version"] = latest.version + 1
            elif definition.version < latest.version:
                versions = await self.store.definition_versions(definition.name)
                if definition.version in versions:
                    existing = await self.store.get_definition(definition.name, definition.version)
                    if _canonical(existing.document) == _canonical(document):
                        return existing
                    raise Conflict(
                        f"definition {definition.name!r} version "
                        f"{definition.version} exists with other content"
                    )
        document.setdefault("version", definition.version)
        await sync_definition_triggers(self.store, definition.name, document)
        record = DefinitionRecord(
            definition.name,
            int(document["version"]),
            document,
            source or json.dumps(doc, indent=2),
            dialect,
        )
        return await self.store.put_definition(record)

    async def get_definition(self, name: str, version: int | None = None) -> DefinitionRecord:
        return await self.store.get_definition(name, version)

    # -- runs -----------------------------------------------------------------------------
    async def start_run(
        self,
        definition: str | dict[str, Any],
        inputs: dict[str, Any] | None = None,
        *,
        version: int | None = None,
        dialect: str = "native",
        labels: dict[str, Any] | None = None,
        actor: str = "api",
        parent_id: str | None = None,
        paused: bool = False,
        run_id: str | None = None,
    ) -> RunRecord:
        """Create a run of a stored (by name) or inline definition and let it start."""
        options = RunOptions(
            run_id=run_id,
            version=version,
            dialect=dialect,
            labels=dict(labels or {}),
            actor=actor,
            parent_id=parent_id,
            paused=paused,
        )
        return await create_run(
            self.store, self.broker, definition, inputs, options, self.queue_rates
        )

    @staticmethod
    def build_tasks(
        run_id: str, model: Definition, document: dict[str, Any], now: Any
    ) -> list[TaskRecord]:
        return build_tasks(run_id, model, document, now)

    async def get_run(self, run_id: str) -> RunRecord:
        return await self.store.get_run(run_id)

    async def wait_run(
        self, run_id: str, timeout: float | None = None, poll: float = 0.5
    ) -> RunRecord:
        """Wait until the run is finished; in-process it wakes at once, else it polls."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            future = (
                self.coordinator.finished_future(run_id) if self.coordinator is not None else None
            )
            run = await self.store.get_run(run_id)
            if RunStatus(run.status).terminal:
                if future is not None:
                    future.cancel()
                return run
            wait = poll if deadline is None else min(poll, deadline - loop.time())
            if wait <= 0:
                raise TimeoutError(f"run {run_id} is still {run.status}")
            if future is None:
                await asyncio.sleep(wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, wait)

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        return await self.store.get_tasks(run_id)

    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        return await self.store.get_attempts(run_id)

    async def list_events(self, run_id: str) -> list[EventRecord]:
        await self.store.get_run(run_id)
        return await self.store.list_events(run_id)

    async def task_by_name(self, run_id: str, name: str) -> TaskRecord:
        for task in await self.store.get_tasks(run_id):
            if task.name == name or task.id == name:
                return task
        raise NotFound(f"run {run_id!r} has no task {name!r}")

    async def read_logs(self, task_id: str, after_id: int = 0) -> list[LogChunk]:
        return await self.store.read_logs(task_id, after_id)

    async def cancel_run(
        self, run_id: str, actor: str = "api", expected_version: int | None = None
    ) -> RunRecord:
        """Cancel a run: unstarted tasks are cancelled, running ones are stopped."""
        run = await self.store.get_run(run_id)
        if expected_version is not None and run.version != expected_version:
            raise Conflict(f"run {run_id!r} changed meanwhile (version {run.version})")
        if RunStatus(run.status).terminal:
            raise InvalidState(f"run {run_id!r} is already {run.status}")
        now = await self.store.now()
        updated = await self.store.update_run(
            run.id,
            run.version,
            {
                "status": RunStatus.CANCELLED.value,
                "finished_at": now,
                "error": f"cancelled by {actor}",
            },
        )
        if updated is None:
            raise Conflict(f"run {run_id!r} changed meanwhile; try again")
        changes = [
            TaskChange(
                t.id,
                t.version,
                {
                    "status": TaskStatus.CANCELLED.value,
                    "finished_at": now,
                    "settled": True,
                    "error": f"run cancelled by {actor}",
                },
            )
            for t in await self.store.get_tasks(run_id)
            if not TaskStatus(t.status).terminal
        ]
        won = await self.store.update_tasks(changes)
        callbacks = callbacks_for(updated)
        if callbacks:
            await self.store.add_callbacks(callbacks)
        for worker in self.workers:
            for task_id in won:
                worker.cancel_task(task_id)
        await self.store.add_event(run_id, "run.cancelled", actor, {"tasks": len(won)})
        return updated
