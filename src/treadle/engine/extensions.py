"""What the coordinator does beyond advancing graphs: waits, limits, schedules, callbacks.

The coordinator calls four hooks of :class:`CoordinatorExtensions`:

* :meth:`admit` before it starts a pending run (concurrency limits),
* :meth:`before_publish` before it rings doorbells (waits are parked instead, rate-limited
  queues are paced),
* :meth:`run_finished` after it finished a run (callbacks go to the outbox),
* :meth:`tick` on every timer tick (wake waits, start waiting runs, fire schedules, send
  callbacks).

Everything they do is kept in the store, so any coordinator can pick up after another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from treadle.broker.base import Broker
from treadle.engine.callbacks import CallbackSender
from treadle.engine.hooks import sync_definition_hooks
from treadle.engine.limits import Limits
from treadle.engine.schedules import ScheduleRunner, StartRun, sync_definition_schedule
from treadle.engine.waits import Waits, is_wait
from treadle.errors import ConfigError
from treadle.model.definition import Definition
from treadle.model.routing import declared_queue
from treadle.store.base import Store
from treadle.store.records import RunRecord, TaskRecord

log = logging.getLogger(__name__)

Advance = Callable[[Iterable[str]], Awaitable[None]]
RING_AHEAD = 60.0  # seconds: paced tasks due sooner get a precise timer


def rung_at_once(task: TaskRecord, queue_rates: Mapping[str, float]) -> bool:
    """Whether ``before_publish`` lets a just-queued task go at once: it is neither a wait
    (parked) nor on a rate-limited queue (paced), so its claim may follow its queueing."""
    return not is_wait(task) and declared_queue(task.queue) not in queue_rates


class CoordinatorExtensions:
    """Waits, limits, schedules and callbacks for one coordinator."""

    def __init__(
        self,
        store: Store,
        advance: Advance,
        *,
        queue_rates: Mapping[str, float] | None = None,
        start_run: StartRun | None = None,
        broker: Broker | None = None,
        stale_sweep_ticks: int = 40,
    ) -> None:
        self.store = store
        self.broker = broker
        self._timers: set[asyncio.TimerHandle] = set()
        self._jobs: set[asyncio.Task[None]] = set()
        self.advance = advance
        self.waits = Waits(store)
        self.limits = Limits(store, queue_rates)
        self.callbacks = CallbackSender(store)
        self.schedules: ScheduleRunner | None = (
            ScheduleRunner(store, start_run) if start_run is not None else None
        )
        self._ticks = 0
        self._disabled: set[str] = set()
        self._stale_sweep_ticks = stale_sweep_ticks

    def set_start_run(self, start_run: StartRun) -> None:
        """Schedules need the service's start_run; the node hands it over once it exists."""
        self.schedules = ScheduleRunner(self.store, start_run)

    async def admit(self, run: RunRecord) -> bool:
        return await self.limits.admit(run)

    async def before_publish(self, tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Park wait tasks and pace rate-limited queues; return the tasks to announce now."""
        waits = [t for t in tasks if is_wait(t)]
        others = [t for t in tasks if not is_wait(t)]
        if waits:
            changed = await self.waits.park(waits)
            if changed:
                await self.advance(sorted(changed))
        now_ok, later = await self.limits.pace(others)
        if later and self.broker is not None:
            now = await self.store.now()
            loop = asyncio.get_running_loop()
            for task, slot in later:
                delay = (slot - now).total_seconds()
                if delay <= RING_AHEAD:
                    # Ring right on time; the due-task sweep is the fallback after a crash.
                    handle = loop.call_later(delay, self._ring_soon, task)
                    self._timers.add(handle)
        return now_ok

    def _ring_soon(self, task: TaskRecord) -> None:
        job = asyncio.create_task(self._ring(task))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _ring(self, task: TaskRecord) -> None:
        assert self.broker is not None
        try:
            await self.store.mark_published([task.id], await self.store.now())
            await self.broker.publish(task.queue, [task.id])
        except Exception as exc:  # the due-task sweep rings it instead
            log.debug("paced doorbell for %s failed: %s", task.id, exc)

    async def run_finished(self, run: RunRecord) -> None:
        await self.callbacks.enqueue(run)

    async def tick(self) -> None:
        """One timer tick; each duty's failure is logged without stopping the others."""
        self._ticks += 1
        for name, duty in (
            ("waits", self._wake),
            ("limits", self._admit_waiting),
            ("schedules", self._fire_schedules),
            ("callbacks", self.callbacks.tick),
        ):
            if name in self._disabled:
                continue
            try:
                await duty()
            except ConfigError as exc:
                # The store lacks these primitives (see store/triggers_unsupported.py).
                self._disabled.add(name)
                log.warning("coordinator %s duty turned off: %s", name, exc.message)
            except Exception as exc:
                log.warning("coordinator %s duty failed: %s", name, exc)

    async def _wake(self) -> None:
        changed = await self.waits.wake_due()
        if changed:
            await self.advance(sorted(changed))
        if self._ticks % self._stale_sweep_ticks == 0:
            await self.store.drop_stale_waits()

    async def _admit_waiting(self) -> None:
        ready = await self.limits.admissible()
        if ready:
            await self.advance(ready)

    async def _fire_schedules(self) -> int:
        if self.schedules is None:
            return 0
        return await self.schedules.fire_due()

    async def stop(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for job in list(self._jobs):
            job.cancel()
        await self.callbacks.stop()


async def sync_definition_triggers(store: Store, name: str, document: dict[str, Any]) -> None:
    """Create, update or drop the schedule and hooks a definition declares."""
    model = Definition.model_validate(document)
    if not getattr(store, "triggers_supported", True):
        if model.hooks or model.schedule:
            raise ConfigError(
                f"definition {name!r} declares hooks or a schedule, which this store "
                f"({type(store).__name__}) does not support yet; use SQLite or PostgreSQL"
            )
        return
    await sync_definition_hooks(store, name, model.hooks)
    await sync_definition_schedule(store, name, model.schedule)
