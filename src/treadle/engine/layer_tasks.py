"""Adding tasks to a layer of a live run, allowed until the layer starts (Igor's model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from treadle.broker.base import COORDINATOR_QUEUE, Broker
from treadle.engine.runs import new_id
from treadle.errors import Conflict, DefinitionError, InvalidState
from treadle.model.definition import TaskSpec
from treadle.model.parse import format_validation_error
from treadle.model.routing import dispatch_queue
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.base import Store
from treadle.store.records import LayerChange, TaskRecord

_TASK: TypeAdapter[Any] = TypeAdapter(TaskSpec)
MAX_ADDED = 10_000


def _validate(specs: Sequence[dict[str, Any]], layer: str, known: set[str]) -> list[Any]:
    if not specs:
        raise DefinitionError("give at least one task")
    if len(specs) > MAX_ADDED:
        raise DefinitionError(f"at most {MAX_ADDED} tasks can be added at once")
    models = []
    names = set(known)
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise DefinitionError(f"task {index} must be a mapping")
        if spec.get("layer") not in (None, layer):
            raise DefinitionError(f"task {index} names layer {spec['layer']!r}, not {layer!r}")
        try:
            model = _TASK.validate_python({**spec, "layer": layer})
        except ValidationError as exc:
            summary, details = format_validation_error(exc)
            raise DefinitionError(f"invalid task {index}: {summary}", details=details) from exc
        if model.name in names:
            raise DefinitionError(f"the run already has a task named {model.name!r}")
        unknown = [d for d in (model.depends_on or []) if d not in names]
        if unknown:
            raise DefinitionError(f"task {model.name!r} depends on unknown tasks: {unknown}")
        names.add(model.name)
        models.append(model)
    return models


async def add_layer_tasks(
    store: Store, broker: Broker, layer_id: str, specs: Sequence[dict[str, Any]], actor: str
) -> list[TaskRecord]:
    """Validate and insert tasks into a pending layer; :class:`Conflict` once it started."""
    layer = await store.get_layer(layer_id)
    if layer.status != "pending":
        raise InvalidState(
            f"layer {layer.name!r} is {layer.status}; tasks can only be added before it starts"
        )
    run = await store.get_run(layer.run_id)
    if RunStatus(run.status).terminal:
        raise InvalidState(f"run {run.id!r} is already {run.status}")
    existing = await store.get_tasks(run.id)
    models = _validate(specs, layer.name, {t.name for t in existing})
    now = await store.now()
    seq = max((t.seq for t in existing), default=0) + 1
    records = [
        TaskRecord(
            id=new_id(),
            run_id=run.id,
            name=model.name,
            seq=seq + index,
            status=(TaskStatus.PAUSED if model.paused else TaskStatus.PENDING).value,
            spec=model.model_dump(mode="json", by_alias=True, exclude_unset=True),
            # Added tasks are roots unless they say otherwise: "previous task" has no meaning.
            depends_on=list(model.depends_on or []),
            queue=dispatch_queue(model.queue, model.model_dump(mode="json", by_alias=True)),
            priority=model.priority,
            created_at=now,
            layer=layer.name,
        )
        for index, model in enumerate(models)
    ]
    await store.add_tasks(records)
    # Bump the layer's version: a coordinator that read the layer before the insert loses its
    # compare-and-set to start it and looks again, now seeing the new tasks.
    if not await store.update_layers([LayerChange(layer.id, layer.version, {})]):
        current = await store.get_layer(layer.id)
        if current.status != "pending":
            await store.delete_tasks([r.id for r in records])
            raise Conflict(f"layer {layer.name!r} started meanwhile; the tasks were not added")
    await store.add_event(
        run.id,
        "layer.tasks_added",
        actor,
        {"layer": layer.name, "tasks": [r.name for r in records]},
    )
    await broker.publish(COORDINATOR_QUEUE, [run.id])
    return records
