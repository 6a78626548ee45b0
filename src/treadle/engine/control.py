"""Operator control of runs, layers and tasks: pause, unpause, kill, retry, skip, rerun.

Each operation is first a compare-and-set on the target row at the etag the operator saw: a
stale etag raises :class:`~treadle.errors.Conflict` and nothing changes. Follow-up writes (the
tasks of a run or layer, tasks downstream) are compare-and-sets too, re-read and re-tried when
the coordinator or a worker moved a row meanwhile. Every action lands on the run's event
history with who did it, and the run is handed to the coordinator to act on.

What each operation means:

- ``pause``: nothing new starts (queued work goes back to waiting); running work goes on.
- ``unpause``: undo a pause (also of something created paused).
- ``kill``: stop now; running processes are stopped, the target ends ``cancelled``.
- ``retry``: a failed, killed or cancelled target runs again (finished work is kept).
- ``skip``: the target ends ``skipped`` and counts as done for what follows.
- ``rerun``: reset the target and everything downstream; upstream outputs are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from treadle.broker.base import COORDINATOR_QUEUE, Broker
from treadle.engine import fanout
from treadle.errors import Conflict, InvalidState, NotFound, TreadleError
from treadle.model.dag import downstream
from treadle.model.states import RunStatus, TaskStatus
from treadle.store.base import Store
from treadle.store.records import LayerChange, LayerRecord, RunRecord, TaskChange, TaskRecord

log = logging.getLogger(__name__)

OPERATIONS = ("pause", "unpause", "kill", "retry", "skip", "rerun")
_KIND_ALIASES = {
    "run": "run",
    "runs": "run",
    "job": "run",
    "jobs": "run",
    "layer": "layer",
    "layers": "layer",
    "task": "task",
    "tasks": "task",
}
# Verdicts the scheduler made (not an operator): re-decided whenever something is reopened.
_SCHEDULER_VERDICTS = ("not run:", "not triggered:")
_RETRIES = 8

KillFn = Callable[[Sequence[str]], object]


def normalise_kind(kind: str) -> str:
    """``run``/``layer``/``task`` from any accepted spelling (Igor's Job/Layer/Task too)."""
    found = _KIND_ALIASES.get(kind.strip().lower())
    if found is None:
        raise InvalidState(f"unknown kind {kind!r}: use run, layer or task")
    return found


def check_operation(op: str) -> str:
    if op not in OPERATIONS:
        raise NotFound(f"unknown operation {op!r}: use one of {', '.join(OPERATIONS)}")
    return op


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one control operation did."""

    kind: str
    id: str
    run_id: str
    op: str
    etag: int
    affected: int


def _reset() -> dict[str, Any]:
    """A task back to ``pending`` (attempts and their count are kept)."""
    return {
        "status": TaskStatus.PENDING.value,
        "output": None,
        "error": None,
        "rendered": None,
        "attempt_id": None,
        "queued_at": None,
        "available_at": None,
        "published_at": None,
        "started_at": None,
        "finished_at": None,
        "settled": False,
    }


def _ended(status: TaskStatus, error: str | None, now: datetime) -> dict[str, Any]:
    return {"status": status.value, "finished_at": now, "error": error, "settled": False}


def _unqueue() -> dict[str, Any]:
    return {"status": TaskStatus.PENDING.value, "rendered": None, "published_at": None}


class Control:
    """Applies control operations; used by the API routes and the CLI (through the API)."""

    def __init__(self, store: Store, broker: Broker, kill: KillFn | None = None) -> None:
        self.store = store
        self.broker = broker
        self.kill = kill

    # -- entry points ---------------------------------------------------------------------
    async def apply(
        self, op: str, kind: str, target_id: str, etag: int | None, actor: str
    ) -> Outcome:
        """Apply ``op`` to one target; ``etag`` None skips the staleness check."""
        check_operation(op)
        kind = normalise_kind(kind)
        for attempt in range(_RETRIES):
            try:
                outcome = await self._apply_once(op, kind, target_id, etag, actor)
                break
            except Conflict:
                # Without an etag the caller acts on the target as it is now (the engine
                # killing a child run, an import): the coordinator moving it meanwhile is not
                # staleness, so read it again. A Conflict means nothing was written.
                if etag is not None or attempt == _RETRIES - 1:
                    raise
        await self.store.add_event(
            outcome.run_id,
            f"{kind}.{op}",
            actor,
            {"kind": kind, "id": target_id, "affected": outcome.affected},
        )
        await self.broker.publish(COORDINATOR_QUEUE, [outcome.run_id])
        return outcome

    async def _apply_once(
        self, op: str, kind: str, target_id: str, etag: int | None, actor: str
    ) -> Outcome:
        if kind == "run":
            return await self._on_run(op, target_id, etag, actor)
        if kind == "layer":
            return await self._on_layer(op, target_id, etag, actor)
        return await self._on_task(op, target_id, etag, actor)

    async def bulk(self, op: str, items: Iterable[tuple[str, str, int | None]], actor: str) -> int:
        """Apply ``op`` to each (kind, id, etag); stale or impossible items are left alone."""
        check_operation(op)
        count = 0
        for kind, target_id, etag in items:
            try:
                await self.apply(op, kind, target_id, etag, actor)
            except TreadleError as exc:
                log.info("bulk %s skipped %s %s: %s", op, kind, target_id, exc.message)
                continue
            count += 1
        return count

    # -- runs -----------------------------------------------------------------------------
    async def _on_run(self, op: str, run_id: str, etag: int | None, actor: str) -> Outcome:
        run = await self.store.get_run(run_id)
        status = RunStatus(run.status)
        now = await self.store.now()
        values: dict[str, Any]
        if op == "pause":
            _require(status in (RunStatus.PENDING, RunStatus.RUNNING), "run", run_id, op, status)
            values = {"status": RunStatus.PAUSED.value}
        elif op == "unpause":
            _require(status == RunStatus.PAUSED, "run", run_id, op, status)
            values = {"status": (RunStatus.RUNNING if run.started_at else RunStatus.PENDING).value}
        elif op == "kill":
            _require(not status.terminal, "run", run_id, op, status)
            values = {
                "status": RunStatus.CANCELLED.value,
                "finished_at": now,
                "error": f"killed by {actor}",
            }
        elif op == "retry":
            _require(status in (RunStatus.FAILED, RunStatus.CANCELLED), "run", run_id, op, status)
            values = _reopened(run, now)
        elif op == "skip":
            _require(status != RunStatus.COMPLETED, "run", run_id, op, status)
            values = {"status": RunStatus.COMPLETED.value, "finished_at": now, "error": None}
        else:  # rerun
            values = {**_reopened(run, now), "output": None}
        updated = await self._cas_run(run, etag, values)
        affected = await self._run_follow_up(op, updated, actor, now)
        return Outcome("run", run.id, run.id, op, updated.version, affected)

    async def _run_follow_up(self, op: str, run: RunRecord, actor: str, now: datetime) -> int:
        tasks = await self.store.get_tasks(run.id)
        if op == "pause":
            return await self._tasks(run.id, lambda t: _unqueue() if _queued(t) else None)
        if op == "kill":
            await self._layers(run.id, lambda layer: _layer_end(layer, "cancelled", now))
            return await self._kill_tasks(run.id, {t.id for t in tasks}, actor, now)
        if op == "skip":
            await self._layers(run.id, lambda layer: _layer_end(layer, "skipped", now))
            return await self._skip_tasks(run.id, {t.id for t in tasks}, actor, now)
        if op == "retry":
            return await self._retry_tasks(run.id, {t.id for t in tasks}, now)
        if op == "rerun":
            await self._layers(run.id, lambda layer: {"status": "pending", "error": None})
            return await self._rerun_tasks(run.id, {t.id for t in tasks}, actor, now)
        return 0

    # -- layers ---------------------------------------------------------------------------
    async def _on_layer(self, op: str, layer_id: str, etag: int | None, actor: str) -> Outcome:
        layer = await self.store.get_layer(layer_id)
        now = await self.store.now()
        open_ = layer.status in ("pending", "running")
        values: dict[str, Any]
        if op == "pause":
            _require(open_ and not layer.paused, "layer", layer_id, op, _paused(layer))
            values = {"paused": True}
        elif op == "unpause":
            _require(layer.paused, "layer", layer_id, op, layer.status)
            values = {"paused": False}
        elif op == "kill":
            _require(open_, "layer", layer_id, op, layer.status)
            values = {"status": "cancelled", "finished_at": now, "error": f"killed by {actor}"}
        elif op == "retry":
            _require(layer.status in ("failed", "cancelled"), "layer", layer_id, op, layer.status)
            values = _layer_reopen(layer)
        elif op == "skip":
            _require(layer.status != "completed", "layer", layer_id, op, layer.status)
            values = {"status": "skipped", "finished_at": now, "error": None, "paused": False}
        else:
            values = {**_layer_reopen(layer), "started_at": None}
        updated = await self._cas_layer(layer, etag, values)
        tasks = await self.store.get_tasks(layer.run_id)
        members = {t.id for t in tasks if t.layer == layer.name}
        affected = 0
        if op == "pause":
            affected = await self._tasks(
                layer.run_id, lambda t: _unqueue() if t.id in members and _queued(t) else None
            )
        elif op == "kill":
            affected = await self._kill_tasks(layer.run_id, members, actor, now)
        elif op == "skip":
            affected = await self._skip_tasks(layer.run_id, members, actor, now)
        elif op == "retry":
            affected = await self._retry_tasks(layer.run_id, members, now)
        elif op == "rerun":
            higher = await self._higher_layers(layer)
            later = {t.id for t in tasks if t.layer in higher}
            affected = await self._rerun_tasks(layer.run_id, members | later, actor, now)
        if op in ("retry", "skip", "rerun"):
            await self._reopen_run(layer.run_id)
        return Outcome("layer", layer.id, layer.run_id, op, updated.version, affected)

    async def _higher_layers(self, layer: LayerRecord) -> set[str]:
        layers = await self.store.get_layers(layer.run_id)
        higher = [x for x in layers if x.priority > layer.priority]
        await self.store.update_layers(
            [LayerChange(x.id, x.version, _layer_reopen(x) | {"started_at": None}) for x in higher]
        )
        return {x.name for x in higher}

    # -- tasks ----------------------------------------------------------------------------
    async def _on_task(self, op: str, task_id: str, etag: int | None, actor: str) -> Outcome:
        task = await self.store.get_task(task_id)
        status = TaskStatus(task.status)
        now = await self.store.now()
        run_id = task.run_id
        if op == "pause":
            _require(status in (TaskStatus.PENDING, TaskStatus.QUEUED), "task", task_id, op, status)
            updated = await self._cas_task(
                task, etag, {"status": TaskStatus.PAUSED.value, "rendered": None}
            )
            return Outcome("task", task.id, run_id, op, updated.version, 1)
        if op == "unpause":
            _require(status == TaskStatus.PAUSED, "task", task_id, op, status)
            updated = await self._cas_task(task, etag, {"status": TaskStatus.PENDING.value})
            return Outcome("task", task.id, run_id, op, updated.version, 1)
        if op == "kill":
            _require(not status.terminal, "task", task_id, op, status)
            updated = await self._cas_task(
                task, etag, _ended(TaskStatus.CANCELLED, f"killed by {actor}", now)
            )
            affected = 1 + await self._after_kill([task], actor, now)
            return Outcome("task", task.id, run_id, op, updated.version, affected)
        if op == "retry":
            _require(
                status in (TaskStatus.FAILED, TaskStatus.CANCELLED), "task", task_id, op, status
            )
            updated = await self._cas_task(task, etag, await self._retry_values(task))
            affected = 1 + await self._retry_children(task)
        elif op == "skip":
            _require(
                status not in (TaskStatus.COMPLETED, TaskStatus.SKIPPED),
                "task",
                task_id,
                op,
                status,
            )
            updated = await self._cas_task(
                task, etag, _ended(TaskStatus.SKIPPED, f"skipped by {actor}", now)
            )
            affected = 1 + await self._after_kill([task], actor, now, TaskStatus.SKIPPED)
        else:  # rerun
            updated = await self._cas_task(task, etag, _reset())
            tasks = await self.store.get_tasks(run_id)
            graph = {t.name: t.depends_on for t in tasks if t.parent_id is None}
            names = downstream(graph, [task.name]) - {task.name}
            later = {t.id for t in tasks if t.name in names}
            affected = 1 + await self._rerun_tasks(run_id, later, actor, now)
            await self._drop_children(run_id, [task])
            await self.kill_now([task] if status == TaskStatus.RUNNING else [])
        await self._reopen_run(run_id)
        return Outcome("task", task.id, run_id, op, updated.version, affected)

    async def _retry_values(self, task: TaskRecord) -> dict[str, Any]:
        if fanout.is_group(task) and await self.store.get_children(task.id):
            # The group goes on: only its failed children run again.
            return {"status": TaskStatus.RUNNING.value, "finished_at": None, "error": None}
        return _reset()

    async def _retry_children(self, parent: TaskRecord) -> int:
        return await self._tasks(
            parent.run_id,
            lambda t: (
                _reset()
                if t.parent_id == parent.id
                and t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
                else None
            ),
        )

    # -- task sets ------------------------------------------------------------------------
    async def _kill_tasks(self, run_id: str, ids: set[str], actor: str, now: datetime) -> int:
        killed: list[TaskRecord] = []

        def values(t: TaskRecord) -> dict[str, Any] | None:
            if t.id not in ids and t.parent_id not in ids:
                return None
            if TaskStatus(t.status).terminal:
                return None
            killed.append(t)
            return _ended(TaskStatus.CANCELLED, f"killed by {actor}", now)

        count = await self._tasks(run_id, values)
        await self.kill_now(killed)
        await self._kill_child_runs(killed, actor)
        return count

    async def _skip_tasks(self, run_id: str, ids: set[str], actor: str, now: datetime) -> int:
        stopped: list[TaskRecord] = []

        def values(t: TaskRecord) -> dict[str, Any] | None:
            if t.id not in ids and t.parent_id not in ids:
                return None
            if t.status in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
                return None
            stopped.append(t)
            return _ended(TaskStatus.SKIPPED, f"skipped by {actor}", now)

        count = await self._tasks(run_id, values)
        await self.kill_now(stopped)
        return count

    async def _retry_tasks(self, run_id: str, ids: set[str], now: datetime) -> int:
        failed = (TaskStatus.FAILED, TaskStatus.CANCELLED)
        parents = {
            t.id
            for t in await self.store.get_tasks(run_id)
            if t.id in ids and t.parent_id is None and t.status in failed
        }

        def values(t: TaskRecord) -> dict[str, Any] | None:
            if t.status not in failed:
                return None
            if t.id in ids and t.parent_id is None:
                if fanout.is_group(t):
                    return {"status": TaskStatus.RUNNING.value, "finished_at": None, "error": None}
                return _reset()
            if t.parent_id in parents:
                return _reset()
            return None

        return await self._tasks(run_id, values)

    async def _rerun_tasks(self, run_id: str, ids: set[str], actor: str, now: datetime) -> int:
        tasks = [t for t in await self.store.get_tasks(run_id) if t.id in ids]
        running = [t for t in tasks if t.status == TaskStatus.RUNNING]
        count = await self._tasks(run_id, lambda t: _reset() if t.id in ids else None)
        await self._drop_children(run_id, tasks)
        await self.kill_now(running)
        return count

    async def _drop_children(self, run_id: str, parents: Sequence[TaskRecord]) -> None:
        """A rerun fan-out is expanded afresh: its old children go."""
        parent_ids = {p.id for p in parents if p.spec.get("each") is not None}
        if not parent_ids:
            return
        children = [t for t in await self.store.get_tasks(run_id) if t.parent_id in parent_ids]
        await self.kill_now([c for c in children if c.status == TaskStatus.RUNNING])
        await self.store.delete_tasks([c.id for c in children])

    async def _after_kill(
        self,
        tasks: Sequence[TaskRecord],
        actor: str,
        now: datetime,
        status: TaskStatus = TaskStatus.CANCELLED,
    ) -> int:
        """Stop what a killed or skipped task had going: its process, children, child run."""
        ids = {t.id for t in tasks}
        verb = "killed" if status == TaskStatus.CANCELLED else "skipped"
        stopped: list[TaskRecord] = []

        def values(t: TaskRecord) -> dict[str, Any] | None:
            if t.parent_id not in ids or TaskStatus(t.status).terminal:
                return None
            stopped.append(t)
            return _ended(status, f"{verb} by {actor}", now)

        count = await self._tasks(tasks[0].run_id, values)
        await self.kill_now([*tasks, *stopped])
        await self._kill_child_runs(tasks, actor)
        return count

    async def _kill_child_runs(self, tasks: Sequence[TaskRecord], actor: str) -> None:
        for task in tasks:
            if task.spec.get("kind") != "subworkflow" or not isinstance(task.output, dict):
                continue
            child = task.output.get("run_id")
            if child:
                try:
                    await self.apply("kill", "run", str(child), None, actor)
                except TreadleError as exc:
                    log.info("child run %s of task %s not killed: %s", child, task.id, exc)

    async def kill_now(self, tasks: Sequence[TaskRecord]) -> None:
        """Stop running attempts in this process at once (other workers notice on their own)."""
        ids = [t.id for t in tasks if t.status == TaskStatus.RUNNING]
        if ids and self.kill is not None:
            self.kill(ids)

    async def _tasks(
        self, run_id: str, values_of: Callable[[TaskRecord], dict[str, Any] | None]
    ) -> int:
        """CAS ``values_of(task)`` onto each task it returns values for; re-read losers."""
        done: set[str] = set()
        for _ in range(_RETRIES):
            changes = []
            for task in await self.store.get_tasks(run_id):
                if task.id in done:
                    continue
                values = values_of(task)
                if values is not None:
                    changes.append(TaskChange(task.id, task.version, values))
            if not changes:
                break
            won = await self.store.update_tasks(changes)
            done.update(won)
            if len(won) == len(changes):
                break
        return len(done)

    async def _layers(
        self, run_id: str, values_of: Callable[[LayerRecord], dict[str, Any] | None]
    ) -> int:
        changes = []
        for layer in await self.store.get_layers(run_id):
            values = values_of(layer)
            if values is not None:
                changes.append(LayerChange(layer.id, layer.version, values))
        return len(await self.store.update_layers(changes))

    # -- the run around a reopened task ---------------------------------------------------
    async def _reopen_run(self, run_id: str) -> None:
        """Let the scheduler decide again: its own verdicts go back to pending, and a finished
        run (and layers it had blocked) run again."""
        await self._tasks(
            run_id,
            lambda t: (
                _reset()
                if t.status in (TaskStatus.CANCELLED, TaskStatus.SKIPPED)
                and (t.error or "").startswith(_SCHEDULER_VERDICTS)
                else None
            ),
        )
        await self._layers(
            run_id,
            lambda layer: (
                _layer_reopen(layer)
                if layer.status in ("cancelled", "failed")
                and ((layer.error or "").startswith("not run:") or layer.status == "failed")
                else None
            ),
        )
        now = await self.store.now()
        for _ in range(_RETRIES):
            run = await self.store.get_run(run_id)
            if not RunStatus(run.status).terminal:
                return
            if await self.store.update_run(run.id, run.version, _reopened(run, now)) is not None:
                return

    # -- compare-and-set on the target ----------------------------------------------------
    async def _cas_run(self, run: RunRecord, etag: int | None, values: dict[str, Any]) -> RunRecord:
        _fresh("run", run.id, run.version, etag)
        updated = await self.store.update_run(run.id, run.version, values)
        if updated is None:
            raise Conflict(f"run {run.id!r} changed meanwhile; reload it and try again")
        return updated

    async def _cas_task(
        self, task: TaskRecord, etag: int | None, values: dict[str, Any]
    ) -> TaskRecord:
        _fresh("task", task.id, task.version, etag)
        if not await self.store.update_tasks([TaskChange(task.id, task.version, values)]):
            raise Conflict(f"task {task.id!r} changed meanwhile; reload it and try again")
        return await self.store.get_task(task.id)

    async def _cas_layer(
        self, layer: LayerRecord, etag: int | None, values: dict[str, Any]
    ) -> LayerRecord:
        _fresh("layer", layer.id, layer.version, etag)
        if not await self.store.update_layers([LayerChange(layer.id, layer.version, values)]):
            raise Conflict(f"layer {layer.id!r} changed meanwhile; reload it and try again")
        return await self.store.get_layer(layer.id)


def _fresh(kind: str, target_id: str, version: int, etag: int | None) -> None:
    if etag is not None and etag != version:
        raise Conflict(
            f"{kind} {target_id!r} has etag {version}, not {etag}: it changed meanwhile",
            details={"etag": str(version)},
        )


def _require(ok: bool, kind: str, target_id: str, op: str, status: object) -> None:
    if not ok:
        raise InvalidState(f"cannot {op} {kind} {target_id!r}: it is {status}")


def _queued(task: TaskRecord) -> bool:
    return task.status == TaskStatus.QUEUED


def _paused(layer: LayerRecord) -> str:
    return "paused" if layer.paused else layer.status


def _reopened(run: RunRecord, now: datetime) -> dict[str, Any]:
    status = RunStatus.RUNNING if run.started_at else RunStatus.PENDING
    values: dict[str, Any] = {"status": status.value, "finished_at": None, "error": None}
    timeout = run.definition.get("timeout")
    if timeout and run.started_at:
        # The run's time limit starts over with the operator's retry or rerun.
        values["deadline_at"] = now + timedelta(seconds=float(timeout))
    return values


def _layer_reopen(layer: LayerRecord) -> dict[str, Any]:
    status = "running" if layer.started_at and layer.status == "failed" else "pending"
    return {"status": status, "finished_at": None, "error": None}


def _layer_end(layer: LayerRecord, status: str, now: datetime) -> dict[str, Any] | None:
    if layer.status in ("pending", "running"):
        return {"status": status, "finished_at": now}
    return None
