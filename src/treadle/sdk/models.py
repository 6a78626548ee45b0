"""Typed results of the SDK: frozen values built from the API's JSON (DESIGN.md §1 names).

Each value keeps the JSON it came from in ``raw`` (not compared), so fields the server adds
later stay reachable without a new SDK release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

TERMINAL_RUN_STATES = frozenset({"completed", "failed", "cancelled"})

T = TypeVar("T")


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a task on a worker; ``id`` is the handler's idempotency key."""

    id: str
    number: int
    status: str
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    output: Any = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            id=str(data["id"]),
            number=int(data.get("number") or 0),
            status=str(data["status"]),
            worker_id=data.get("worker_id"),
            started_at=_when(data.get("started_at")),
            finished_at=_when(data.get("finished_at")),
            duration=data.get("duration"),
            output=data.get("output"),
            error=data.get("error"),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A node of a run's graph with its latest output and every attempt."""

    id: str
    name: str
    status: str
    kind: str | None = None
    output: Any = None
    error: str | None = None
    etag: str | None = None
    depends_on: tuple[str, ...] = ()
    queue: str | None = None
    layer: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    attempts: tuple[Attempt, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            status=str(data["status"]),
            kind=data.get("kind"),
            output=data.get("output"),
            error=data.get("error"),
            etag=_etag(data.get("etag")),
            depends_on=tuple(data.get("depends_on") or ()),
            queue=data.get("queue"),
            layer=data.get("layer"),
            started_at=_when(data.get("started_at")),
            finished_at=_when(data.get("finished_at")),
            duration=data.get("duration"),
            attempts=tuple(Attempt.from_json(a) for a in data.get("attempts") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a definition. ``tasks`` is empty in listings (see ``runs.get``)."""

    id: str
    status: str
    definition: str | None = None
    version: int | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    etag: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    tasks: tuple[Task, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            definition=data.get("definition"),
            version=data.get("version"),
            inputs=dict(data.get("inputs") or {}),
            output=data.get("output"),
            error=data.get("error"),
            etag=_etag(data.get("etag")),
            created_at=_when(data.get("created_at")),
            started_at=_when(data.get("started_at")),
            finished_at=_when(data.get("finished_at")),
            duration=data.get("duration"),
            tasks=tuple(Task.from_json(t) for t in data.get("tasks") or ()),
            raw=dict(data),
        )

    @property
    def done(self) -> bool:
        """True once the run is completed, failed or cancelled."""
        return self.status in TERMINAL_RUN_STATES

    def task(self, name: str) -> Task:
        """The task called ``name``; KeyError names the tasks there are."""
        for task in self.tasks:
            if task.name == name:
                return task
        known = ", ".join(t.name for t in self.tasks) or "none"
        raise KeyError(f"run {self.id} has no task {name!r} (tasks: {known})")


@dataclass(frozen=True, slots=True)
class DefinitionRef:
    """What storing a definition answers: its name and the version it got."""

    name: str
    version: int
    dialect: str = "native"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DefinitionRef:
        return cls(str(data["name"]), int(data["version"]), str(data.get("dialect") or "native"))


@dataclass(frozen=True, slots=True)
class Definition:
    """A stored definition (``document`` is the native form, ``source`` the text sent)."""

    name: str
    version: int
    dialect: str = "native"
    description: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    document: Mapping[str, Any] | None = None
    source: str | None = None
    versions: tuple[int, ...] = ()
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Definition:
        return cls(
            name=str(data["name"]),
            version=int(data["version"]),
            dialect=str(data.get("dialect") or "native"),
            description=data.get("description"),
            inputs=dict(data.get("inputs") or {}),
            document=data.get("document"),
            source=data.get("source"),
            versions=tuple(data.get("versions") or ()),
            created_at=_when(data.get("created_at")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Worker:
    """A worker process as the registry last saw it."""

    id: str
    status: str
    host: str | None = None
    queues: Mapping[str, int] = field(default_factory=dict)
    in_flight: int = 0
    started_at: datetime | None = None
    last_seen: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Worker:
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            host=data.get("host"),
            queues=dict(data.get("queues") or {}),
            in_flight=int(data.get("in_flight") or 0),
            started_at=_when(data.get("started_at")),
            last_seen=_when(data.get("last_seen")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's history (who did what, when)."""

    id: Any
    kind: str
    actor: str | None = None
    at: datetime | None = None
    detail: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            id=data.get("id"),
            kind=str(data["kind"]),
            actor=data.get("actor"),
            at=_when(data.get("at")),
            detail=data.get("detail"),
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule that starts runs of a definition."""

    id: str
    definition: str | None = None
    cron: str | None = None
    timezone: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    next_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schedule:
        return cls(
            id=str(data.get("id") or data.get("name")),
            definition=data.get("definition"),
            cron=data.get("cron"),
            timezone=data.get("timezone"),
            inputs=dict(data.get("inputs") or {}),
            paused=bool(data.get("paused", False)),
            next_at=_when(data.get("next_at")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: tuple[T, ...]
    next_cursor: str | None = None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _etag(value: Any) -> str | None:
    return None if value is None else str(value)
