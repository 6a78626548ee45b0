"""Frozen rows exchanged between the engine and a store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DefinitionRecord:
    name: str
    version: int
    document: dict[str, Any]
    source: str
    dialect: str = "native"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    definition_name: str
    definition_version: int
    definition: dict[str, Any]
    status: str
    inputs: dict[str, Any]
    created_at: datetime
    version: int = 1
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: str | None = None
    dialect: str = "native"
    labels: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    run_id: str
    name: str
    seq: int
    status: str
    spec: dict[str, Any]
    depends_on: list[str]
    queue: str
    priority: int
    created_at: datetime
    version: int = 1
    rendered: dict[str, Any] | None = None
    output: Any = None
    error: str | None = None
    attempt_count: int = 0
    attempt_id: str | None = None
    queued_at: datetime | None = None
    available_at: datetime | None = None
    published_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    settled: bool = False
    layer: str | None = None
    parent_id: str | None = None  # the fan-out task that expanded this one (``each``)


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """An ordered stage of a run: same priority runs together, higher ones wait (Igor)."""

    id: str
    run_id: str
    name: str
    priority: int
    status: str  # pending | running | completed | failed | skipped | cancelled
    created_at: datetime
    paused: bool = False
    version: int = 1
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LayerChange:
    """A compare-and-set on one layer, like :class:`TaskChange`."""

    layer_id: str
    expected_version: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: str
    task_id: str
    run_id: str
    number: int
    status: str
    worker_id: str
    started_at: datetime
    lease_expires_at: datetime
    finished_at: datetime | None = None
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    run_id: str
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogChunk:
    id: int
    task_id: str
    attempt_id: str | None
    at: datetime
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    host: str
    queues: dict[str, int]
    started_at: datetime
    last_seen: datetime
    status: str = "alive"
    in_flight: int = 0
    capabilities: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskChange:
    """A compare-and-set on one task: applied only if its version still equals ``expected``."""

    task_id: str
    expected_version: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionWrite:
    """The arguments of one :meth:`Store.apply_decision`, for writing several at once."""

    changes: Sequence[TaskChange]
    settled: Sequence[str]
    run_change: tuple[str, int, dict[str, Any]] | None
    events: Sequence[tuple[str, str, str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What a worker reports when an attempt ends (fenced by ``attempt_id``)."""

    attempt_id: str
    task_id: str
    attempt_status: str  # completed | failed | cancelled
    task_status: str  # completed | failed | queued (retry) | cancelled
    output: Any = None
    error: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewLog:
    run_id: str
    task_id: str
    attempt_id: str | None
    stream: str
    text: str


#: The task columns the coordinator reads on every pass (``Store.load_run_state``): no JSON
#: and no timestamps, which the scheduler does not need.
LIGHT_TASK_FIELDS = (
    "id",
    "run_id",
    "name",
    "seq",
    "status",
    "queue",
    "priority",
    "version",
    "error",
    "attempt_count",
    "attempt_id",
    "settled",
    "layer",
    "parent_id",
)
