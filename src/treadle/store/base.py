"""The ``Store`` protocol: the small set of primitives every store implements.

The store knows rows and compare-and-set, nothing of DAG rules. Every state change is one
conditional statement on ``(id, version)``; callers learn which ones won.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from treadle.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DefinitionRecord,
    EventRecord,
    LayerChange,
    LayerRecord,
    LogChunk,
    NewLog,
    RunRecord,
    TaskChange,
    TaskRecord,
    WorkerRecord,
)
from treadle.store.secrets_base import SecretStore
from treadle.store.tokens_base import TokenStore
from treadle.store.triggers_base import TriggerStore


@runtime_checkable
class Store(TriggerStore, TokenStore, SecretStore, Protocol):
    """Persistence for treadle. Implementations: SQLite, PostgreSQL (and more later)."""

    url: str

    async def migrate(self) -> None:
        """Create or upgrade the schema."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~treadle.errors.ServiceUnavailable` when the store cannot be reached."""

    async def now(self) -> datetime:
        """The store's clock (leases are measured by it)."""

    # definitions
    async def put_definition(self, record: DefinitionRecord) -> DefinitionRecord: ...
    async def get_definition(self, name: str, version: int | None = None) -> DefinitionRecord:
        """The given version, or the latest. Raises NotFound."""

    async def list_definitions(self) -> list[DefinitionRecord]:
        """The latest version of each definition."""

    async def definition_versions(self, name: str) -> list[int]: ...

    # runs and tasks
    async def create_run(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord],
        layers: Sequence[LayerRecord] = (),
        events: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        """Write a new run with its tasks and layers; ``events`` (kind, actor, detail) are
        recorded with it, in the same transaction where the store has transactions.
        Conflict if the run or a task exists already."""

    async def get_run(self, run_id: str) -> RunRecord:
        """Raises NotFound."""

    async def list_runs(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_prefix: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        """Newest first; returns the page and the cursor of the next page (or None)."""

    async def count_runs(self, *, status: str | None = None) -> int: ...
    async def active_run_ids(self, limit: int = 1000) -> list[str]:
        """Runs that are not terminal (used to resume after a restart)."""

    async def update_run(
        self, run_id: str, expected_version: int, values: dict[str, Any]
    ) -> RunRecord | None:
        """Compare-and-set; None when the version moved on."""

    async def get_tasks(self, run_id: str) -> list[TaskRecord]: ...
    async def load_run_state(
        self, run_id: str, with_outputs: bool
    ) -> tuple[RunRecord, list[dict[str, Any]], dict[str, Any] | None]:
        """One read for the coordinator: the run, its tasks' light columns (dicts with the keys
        id, run_id, name, seq, status, queue, priority, version, error, attempt_count,
        attempt_id, settled, layer, parent_id) and, if asked, task id -> output."""

    async def apply_decision(
        self,
        changes: Sequence[TaskChange],
        settled: Sequence[str],
        run_change: tuple[str, int, dict[str, Any]] | None,
        events: Sequence[tuple[str, str, str, dict[str, Any]]],
    ) -> tuple[list[str], RunRecord | None]:
        """One write for the coordinator: task compare-and-sets, settled marks, and the run's
        compare-and-set with its events (recorded only if the run's update won)."""

    async def get_task_states(self, run_id: str) -> list[TaskRecord]:
        """The run's tasks without their JSON columns (spec, depends_on, rendered, output)."""

    async def task_outputs(self, run_id: str) -> dict[str, Any]:
        """Task id -> output for the run's tasks that have one."""

    async def get_children(self, parent_id: str) -> list[TaskRecord]:
        """A fan-out task's children by ``seq``."""

    async def get_task(self, task_id: str) -> TaskRecord: ...
    async def update_tasks(self, changes: Sequence[TaskChange]) -> list[str]:
        """Apply each compare-and-set that still holds; return the ids that won."""

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None: ...
    async def expand_task(self, change: TaskChange, children: Sequence[TaskRecord]) -> bool:
        """In one transaction: apply ``change`` (compare-and-set) and, if it won, insert
        ``children``. Returns whether it won."""

    async def delete_tasks(self, task_ids: Sequence[str]) -> None:
        """Remove tasks with their attempts and logs (fan-out children being rebuilt)."""

    async def overdue_run_ids(self, now: datetime, limit: int = 100) -> list[str]:
        """Unfinished runs whose ``deadline_at`` (the run ``timeout``) has passed."""

    # layers
    async def get_layers(self, run_id: str) -> list[LayerRecord]:
        """The run's layers, lowest priority first."""

    async def get_layer(self, layer_id: str) -> LayerRecord:
        """Raises NotFound."""

    async def update_layers(self, changes: Sequence[LayerChange]) -> list[str]:
        """Apply each compare-and-set that still holds; return the ids that won."""

    # dispatch
    async def due_tasks(
        self, now: datetime, redeliver_before: datetime, limit: int
    ) -> list[TaskRecord]:
        """Queued, due tasks whose doorbell was never rung or rung before ``redeliver_before``."""

    async def mark_published(self, task_ids: Sequence[str], at: datetime) -> None: ...
    async def claim(
        self, task_ids: Sequence[str], worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Move each queued, due task to running with a new attempt; skip the others."""

    async def claim_next(
        self, queue: str, limit: int, worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Claim up to ``limit`` queued, due tasks of ``queue``, highest priority first."""

    async def live_attempts(self, attempt_ids: Sequence[str]) -> list[str]:
        """Which of these attempts are still the current attempt of a running task (read-only)."""

    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[str]:
        """Record outcomes of attempts that are still current and running (fencing).

        Returns the attempt ids that were accepted; stale ones change nothing.
        """

    async def finish_and_claim(
        self,
        outcomes: Sequence[AttemptOutcome],
        queue: str,
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[list[str], list[tuple[TaskRecord, AttemptRecord]]]:
        """:meth:`finish_attempts`, then :meth:`claim_next` of up to ``limit`` tasks of
        ``queue``, in one transaction where the store can: a worker hands the slots its
        finished attempts held straight to new ones. Returns (accepted ids, claimed)."""

    async def renew_leases(self, attempt_ids: Sequence[str], lease_seconds: float) -> list[str]:
        """Extend live attempts; return those still valid (others must stop)."""

    async def expire_leases(self, delivery_limit: int, limit: int = 500) -> list[TaskRecord]:
        """Mark attempts whose lease passed as lost and re-queue (or fail) their tasks."""

    async def get_attempts(self, run_id: str) -> list[AttemptRecord]: ...
    async def mark_settled(self, task_ids: Sequence[str]) -> None:
        """Note that the coordinator has seen these finished tasks (no version change)."""

    async def unsettled_run_ids(self, limit: int = 100) -> list[str]:
        """Runs holding finished tasks the coordinator has not looked at yet."""

    # logs and events
    async def append_logs(self, logs: Sequence[NewLog]) -> None: ...
    async def read_logs(
        self, task_id: str, after_id: int = 0, limit: int = 1000
    ) -> list[LogChunk]: ...
    async def add_event(
        self, run_id: str, kind: str, actor: str, detail: dict[str, Any] | None = None
    ) -> None: ...
    async def list_events(self, run_id: str) -> list[EventRecord]: ...

    # workers
    async def upsert_worker(self, worker: WorkerRecord) -> None: ...
    async def list_workers(self) -> list[WorkerRecord]: ...

    # retention
    async def prune_runs(
        self,
        finished_before: datetime,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished runs older than ``finished_before`` with their tasks, attempts,
        events and logs, ``batch`` runs per transaction; ``on_batch(n)`` after each one."""
