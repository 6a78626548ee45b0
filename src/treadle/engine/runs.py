"""Creating runs: rows for the run, its tasks and its layers, written in one go.

Used by :class:`~treadle.engine.service.EngineService` (API, CLI) and by the coordinator when a
``subworkflow`` task starts a child run.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE, Broker
from treadle.engine.first_pass import first_pass
from treadle.errors import InvalidState
from treadle.model.definition import Definition
from treadle.model.inputs import resolve_inputs
from treadle.model.parse import definition_from_document
from treadle.model.routing import dispatch_queue
from treadle.model.states import RunStatus, TaskStatus
from treadle.observability import tracing
from treadle.store.base import Store
from treadle.store.records import LayerRecord, RunRecord, TaskRecord

log = logging.getLogger(__name__)

#: How deep subworkflows may nest: a definition that starts itself stops here.
MAX_SUBWORKFLOW_DEPTH = 10


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to start a run besides its definition and inputs."""

    version: int | None = None
    run_id: str | None = None  # a caller-chosen id (schedules derive one per tick)
    dialect: str = "native"
    labels: dict[str, Any] = field(default_factory=dict)
    actor: str = "api"
    parent_id: str | None = None
    paused: bool = False


def build_tasks(
    run_id: str, model: Definition, document: dict[str, Any], now: datetime
) -> list[TaskRecord]:
    """One pending (or paused) task row per task of the definition."""
    deps = model.dependencies()
    records = []
    for seq, (task, doc) in enumerate(zip(model.tasks, document["tasks"], strict=True)):
        records.append(
            TaskRecord(
                id=new_id(),
                run_id=run_id,
                name=task.name,
                seq=seq,
                status=(TaskStatus.PAUSED if task.paused else TaskStatus.PENDING).value,
                spec=doc,
                depends_on=deps[task.name],
                queue=dispatch_queue(task.queue, doc),
                priority=task.priority,
                created_at=now,
                layer=task.layer,
            )
        )
    return records


def build_layers(run_id: str, model: Definition, now: datetime) -> list[LayerRecord]:
    return [
        LayerRecord(
            id=new_id(),
            run_id=run_id,
            name=layer.name,
            priority=layer.priority,
            status="pending",
            created_at=now,
            paused=layer.paused,
        )
        for layer in model.layers
    ]


async def create_run(
    store: Store,
    broker: Broker,
    definition: str | dict[str, Any],
    inputs: dict[str, Any] | None,
    options: RunOptions,
    queue_rates: Mapping[str, float] | None = None,
) -> RunRecord:
    """Validate, write the rows, record the event and ring the coordinator's bell.

    With ``queue_rates`` (the queues' rate limits, as coordinators apply them) a native run's
    first pass is made here when it only queues tasks (:mod:`treadle.engine.first_pass`):
    the run is written started, with those tasks queued, and their doorbells ring at once.
    Runs of the seed dialects keep the coordinator's first pass: their APIs answer a submit
    with the job as accepted (pending), as the engines they imitate do.
    """
    dialect = options.dialect
    if isinstance(definition, str):
        record = await store.get_definition(definition, options.version)
        model = definition_from_document(record.document)
        dialect = dialect if dialect != "native" else record.dialect
    else:
        model = definition_from_document(definition)
    depth = int(options.labels.get("depth", 0))
    if depth > MAX_SUBWORKFLOW_DEPTH:
        raise InvalidState(
            f"subworkflow depth limit {MAX_SUBWORKFLOW_DEPTH} reached starting "
            f"{model.name!r}: does the definition start itself?"
        )
    resolved = resolve_inputs({k: v.model_dump() for k, v in model.inputs.items()}, inputs or {})
    run_id = options.run_id or new_id()
    attributes = {"treadle.run_id": run_id, "treadle.definition": model.name}
    with tracing.span("treadle.run.submit", attributes):
        return await _write_run(
            store, broker, run_id, model, resolved, dialect, options, queue_rates
        )


async def _write_run(
    store: Store,
    broker: Broker,
    run_id: str,
    model: Definition,
    resolved: dict[str, Any],
    dialect: str,
    options: RunOptions,
    queue_rates: Mapping[str, float] | None,
) -> RunRecord:
    document = model.to_document()
    document.setdefault("version", model.version)
    labels = dict(options.labels)
    traceparent = tracing.current_traceparent()
    if traceparent:
        # Later spans (coordinator, workers) join this trace through the store.
        labels[tracing.TRACEPARENT_LABEL] = traceparent
    now = await store.now()
    run = RunRecord(
        id=run_id,
        definition_name=model.name,
        definition_version=int(document["version"]),
        definition=document,
        status=(RunStatus.PAUSED if options.paused else RunStatus.PENDING).value,
        inputs=resolved,
        created_at=now,
        dialect=dialect,
        labels=labels,
        parent_id=options.parent_id,
    )
    tasks = build_tasks(run.id, model, document, now)
    detail: dict[str, Any] = {"definition": model.name, "version": run.definition_version}
    if options.paused:
        detail["paused"] = True
    event = ("run.created", options.actor, detail)
    layers = build_layers(run.id, model, now)
    started = (
        first_pass(run, tasks, layers, now, queue_rates)
        if queue_rates is not None and dialect == "native"
        else None
    )
    if started is None:
        await store.create_run(run, tasks, layers, [event])
        await broker.publish(COORDINATOR_QUEUE, [run.id])
    else:
        await store.create_run(started.run, started.tasks, layers, [event, *started.events])
        by_queue: dict[str, list[str]] = defaultdict(list)
        for task in started.queued:
            by_queue[task.queue].append(task.id)
        for queue, ids in by_queue.items():
            await broker.publish(queue, ids)
        tracing.record_dispatch(started.run, started.queued)
        run = started.run
    log.info("run %s of %s created", run.id, model.name, extra={"run_id": run.id})
    return run
