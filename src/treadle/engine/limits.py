"""Concurrency limits on runs and rate limits on queues.

*Concurrency*: a definition's ``concurrency: {limit, key}`` caps its unfinished runs (per value
of the rendered ``key`` when given). A run over the cap stays ``pending``; the coordinator asks
the store for a slot before it starts a run, and re-asks for waiting runs on every tick, so
they start oldest first as slots free. A run labelled ``treadle.serial: NAME`` also joins the
one-at-a-time group NAME (schedules with ``overlap: queue`` use this).

*Rate*: ``queue_rates`` (setting) caps how many tasks per second a queue dispatches. Each
queueing of a task gets a dispatch time from the store, spaced ``1/rate`` apart and shared by
every coordinator; a task whose time has not come is held back (its ``available_at`` moved),
and workers cannot claim it early.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from treadle.errors import TemplateError
from treadle.model.routing import declared_queue
from treadle.model.states import RunStatus, TaskStatus
from treadle.model.templating import render_text
from treadle.store.base import Store
from treadle.store.records import RunRecord, TaskChange, TaskRecord

log = logging.getLogger(__name__)

SERIAL_LABEL = "treadle.serial"
_MAX_KEY = 300


def _short(key: str) -> str:
    if len(key) <= _MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return key[: _MAX_KEY - 65] + "#" + digest


def run_scopes(run: RunRecord) -> list[tuple[str, int]]:
    """The ``(key, limit)`` groups ``run`` needs a slot in; TemplateError for a bad key."""
    scopes: list[tuple[str, int]] = []
    spec = run.definition.get("concurrency")
    if isinstance(spec, dict) and spec.get("limit"):
        key = f"definition:{run.definition_name}"
        template = spec.get("key")
        if template:
            context: dict[str, Any] = {
                "inputs": run.inputs,
                "run": {"id": run.id, "definition": run.definition_name, "labels": run.labels},
            }
            key += ":" + render_text(template, context, "concurrency.key")
        scopes.append((_short(key), int(spec["limit"])))
    serial = run.labels.get(SERIAL_LABEL)
    if serial:
        scopes.append((_short(f"serial:{serial}"), 1))
    return scopes


class Limits:
    """Admission of runs and dispatch pacing of rate-limited queues."""

    def __init__(self, store: Store, queue_rates: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.queue_rates = {q: float(r) for q, r in (queue_rates or {}).items() if r and r > 0}
        # Passes reach admission in the order their runs were rung (oldest first); admitting
        # one at a time keeps that order, where concurrent admissions could let a newer run
        # take a slot before an older one had registered its claim.
        self._admitting = asyncio.Lock()

    async def admit(self, run: RunRecord) -> bool:
        """Whether a pending ``run`` may start now (a run without limits always may)."""
        try:
            scopes = run_scopes(run)
        except TemplateError as exc:
            now = await self.store.now()
            await self.store.update_run(
                run.id,
                run.version,
                {
                    "status": RunStatus.FAILED.value,
                    "finished_at": now,
                    "error": f"cannot compute the concurrency key: {exc.message}",
                },
            )
            return False
        if not scopes:
            return True
        async with self._admitting:
            admitted = await self.store.admit_run(run.id, run.created_at, scopes)
        if not admitted:
            log.debug("run waits for a concurrency slot", extra={"run_id": run.id})
        return admitted

    async def admissible(self) -> list[str]:
        """Waiting runs that could start now."""
        return await self.store.admissible_run_ids()

    async def pace(
        self, tasks: Sequence[TaskRecord]
    ) -> tuple[list[TaskRecord], list[tuple[TaskRecord, datetime]]]:
        """Split tasks about to be announced into those whose dispatch time has come and those
        deferred to a later time (with that time).

        Tasks on rate-limited queues get a dispatch time; a deferred task has its
        ``available_at`` moved there, so no worker can claim it early and the coordinator's
        due-task sweep rings it when its time comes (if nobody rang it sooner).
        """
        if not self.queue_rates:
            return list(tasks), []
        now_ok: list[TaskRecord] = []
        later: list[tuple[TaskRecord, datetime]] = []
        limited: dict[str, list[TaskRecord]] = defaultdict(list)
        for task in tasks:
            # A queue's rate covers its container twin too (model/routing.py).
            declared = declared_queue(task.queue)
            if declared in self.queue_rates:
                limited[declared].append(task)
            else:
                now_ok.append(task)
        if not limited:
            return now_ok, later
        now = await self.store.now()
        for queue, group in limited.items():
            fresh = [await self.store.get_task(t.id) for t in group]
            fresh = [t for t in fresh if t.status == TaskStatus.QUEUED]
            items = [(t.id, t.run_id, _token(t)) for t in fresh]
            slots = await self.store.reserve_task_slots(
                queue, items, 1.0 / self.queue_rates[queue], now
            )
            deferred = []
            for task in fresh:
                slot = slots[task.id]
                if slot <= now:
                    now_ok.append(task)
                    continue
                later.append((task, slot))
                if task.available_at is None or task.available_at < slot:
                    deferred.append(
                        TaskChange(
                            task.id, task.version, {"available_at": slot, "published_at": None}
                        )
                    )
            await self.store.update_tasks(deferred)
        return now_ok, later


def _token(task: TaskRecord) -> str:
    """Identifies one queueing of a task (a retry or a re-queue is a new one)."""
    queued = task.queued_at.isoformat() if task.queued_at else "-"
    return f"{task.attempt_count}:{queued}"
