"""The coordinator: advances runs, rings doorbells for due tasks, sweeps expired leases.

Any number of coordinators may run against one store. Every write is a compare-and-set, so
two coordinators advancing the same run cannot both move a task; lost broker messages are made
good by the periodic sweeps (unsettled runs, due tasks that were never answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from treadle.broker._common import ack_all
from treadle.broker.base import COORDINATOR_QUEUE, Broker, Delivery
from treadle.engine import step_ahead
from treadle.engine.combiner import Combiner
from treadle.engine.extensions import CoordinatorExtensions, rung_at_once
from treadle.engine.fanout import finish_group
from treadle.engine.run_state import RunState, StaleState
from treadle.engine.scheduler import FANOUT_WINDOW, Decision, decide
from treadle.engine.subworkflow import child_finished, start_child
from treadle.errors import NotFound
from treadle.model.states import RunStatus
from treadle.observability import logcontext, metrics, tracing
from treadle.store.base import Store
from treadle.store.batch import (
    Applied,
    ClaimingPassStore,
    apply_decisions,
    apply_one,
    get_tasks_many,
    load_run_deltas,
)
from treadle.store.delta import RunDelta, load_run_delta
from treadle.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DecisionWrite,
    LayerRecord,
    RunRecord,
    TaskRecord,
)
from treadle.store.stepping import SteppingStore, StepResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassRead:
    """A run's pass read that a worker makes together with its report (the store returns
    both from one statement where it can), for the copy of the run it was asked for."""

    run_id: str
    with_layers: bool
    state: RunState
    passes: int

    @property
    def request(self) -> tuple[str, bool]:
        return (self.run_id, self.with_layers)


#: Pass reads made ahead of the passes, by run id (Coordinator.advance).
Prefetched = Mapping[str, tuple[PassRead, RunDelta]]
#: A pass's write with the ids of the tasks it queues that the local worker claims, and what
#: the store returns for it (ClaimingPassStore.apply_and_claim).
ClaimingRequest = tuple[DecisionWrite, Sequence[str]]
ClaimingResult = tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]


class LocalWorker(Protocol):
    """A worker in this process that takes the tasks its coordinator queues (worker.py)."""

    id: str

    @property
    def lease_seconds(self) -> float: ...

    async def reserve(self, tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Free slots taken for those of ``tasks`` it can run (each then goes to begin)."""
        ...

    def begin(
        self,
        reserved: Sequence[TaskRecord],
        claimed: Sequence[tuple[TaskRecord, AttemptRecord]],
    ) -> None:
        """Run the claimed attempts in their reserved slots; free the other slots."""
        ...

    async def take_over(self, tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Claim queued tasks on free slots; return those it did not take."""
        ...


#: Runs whose pass lock this context (and the tasks it spawns) already holds: a pass may
#: advance its own run again (a wait that fails while being parked), which must not wait on
#: the lock it holds.
_HELD_RUNS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "treadle_held_runs", default=frozenset()
)

STATE_CACHE_RUNS = 2000
#: Runs remembered as finished here, so that a late event for one costs a light read.
FINISHED_MEMORY = 10_000
SMALL_RUN_TASKS = 200
BIG_RUN_COALESCE_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class CoordinatorSettings:
    tick_seconds: float = 0.25
    sweep_seconds: float = 1.0
    redeliver_after: float = 15.0
    delivery_limit: int = 5
    batch: int = 500
    fanout_window: int = FANOUT_WINDOW
    queue_rates: Mapping[str, float] = field(default_factory=dict)  # tasks/s per queue
    #: Runs advanced at once: overlapping the passes of independent runs hides their store
    #: latency, and passes that read or write together share one transaction (combiner.py);
    #: compare-and-set keeps the runs apart.
    parallel_runs: int = 32


class Coordinator:
    """Applies scheduling decisions; see the module docstring."""

    def __init__(
        self, store: Store, broker: Broker, settings: CoordinatorSettings | None = None
    ) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings or CoordinatorSettings()
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.advanced = 0
        # run id -> this coordinator's copy of the run's tasks (engine/run_state.py).
        self._states: dict[str, RunState] = {}
        self.reloads = 0  # full reads of a run after the first (the copy had gone stale)
        # Runs this coordinator saw finish, oldest first. Reports that land while a run's last
        # pass is being made still send their events; answering those from a full read would
        # read every task of a finished run again (and keep its copy cached).
        self._finished: dict[str, None] = {}
        self._run_locks: dict[str, list[Any]] = {}  # run id -> [lock, users]
        # Runs the last sweep found with finished tasks nobody had looked at yet.
        self._unsettled_seen: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[RunRecord]]] = {}
        # Called with task ids whose attempts must stop now (in-process workers register here;
        # remote workers notice through their kill check).
        self.kill_hooks: list[Callable[[Sequence[str]], object]] = []
        # A worker in this process that claims tasks this coordinator queued, before any
        # doorbell rings for them: in the pass's own write where the store can (see
        # _write_claiming), else right after it (see publish).
        self.local_worker: LocalWorker | None = None
        # Waits, concurrency and rate limits, schedules, callbacks (engine/extensions.py).
        self.extensions = CoordinatorExtensions(
            store, self.advance, queue_rates=self.settings.queue_rates, broker=broker
        )
        # Passes of different runs that read or write at the same moment share a transaction.
        self._reads: Combiner[tuple[str, bool], RunDelta] = Combiner(
            functools.partial(load_run_deltas, store), self._read_one
        )
        self._full_reads: Combiner[str, list[TaskRecord]] = Combiner(
            functools.partial(get_tasks_many, store), store.get_tasks
        )
        self._writes: Combiner[DecisionWrite, Applied] = Combiner(
            functools.partial(apply_decisions, store), functools.partial(apply_one, store)
        )
        self._bells: Combiner[tuple[str, list[str]], None] = Combiner(
            self._ring_many, self._ring_one
        )
        # Passes that queue a task for the local worker (chain steps of several runs).
        self._claiming: Combiner[ClaimingRequest, ClaimingResult] = Combiner(
            self._claim_many, self._claim_one
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self.resume_all()
        self._tasks = [
            asyncio.create_task(self._feed(), name="coordinator-feed"),
            asyncio.create_task(self._advance_loop(), name="coordinator-advance"),
            asyncio.create_task(self._timer_loop(), name="coordinator-timers"),
        ]

    async def stop(self) -> None:
        await self.extensions.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        # After the loops: a pass still waiting on a batch ends with them, not before.
        combiners = (self._reads, self._full_reads, self._writes, self._claiming, self._bells)
        for combiner in combiners:
            await combiner.close()

    async def resume_all(self) -> None:
        """After a start: look at every unfinished run once (doorbells may have been lost)."""
        run_ids = await self.store.active_run_ids(limit=100_000)
        for start in range(0, len(run_ids), 200):
            await self.advance(run_ids[start : start + 200])

    # -- loops ----------------------------------------------------------------------------
    async def _feed(self) -> None:
        while True:
            try:
                async for delivery in self.broker.consume(COORDINATOR_QUEUE, prefetch=1000):
                    await self._inbox.put(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker reconnects; keep consuming
                log.warning("coordinator feed interrupted: %s", exc)
            # Also after a stream that ended without an error (a closing broker ends it at
            # once): consuming again at once would spin without yielding to the event loop.
            await asyncio.sleep(1.0)

    async def _advance_loop(self) -> None:
        while True:
            first = await self._inbox.get()
            batch = [first]
            self._drain_into(batch)
            if any(len(self._states.get(d.body, ())) > SMALL_RUN_TASKS for d in batch):
                # A big run (a fan-out) finishes tasks in a stream: wait a moment so one pass
                # covers many of them instead of re-reading every row for each one.
                await asyncio.sleep(BIG_RUN_COALESCE_SECONDS)
                self._drain_into(batch)
            run_ids = list(dict.fromkeys(d.body for d in batch))
            try:
                await self.advance(run_ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.STORE_ERRORS.labels("advance").inc()
                log.warning("advancing %d runs failed, will retry: %s", len(run_ids), exc)
                for delivery in batch:
                    await delivery.nack()
                await asyncio.sleep(0.5)
                continue
            await ack_all(batch)

    def _drain_into(self, batch: list[Delivery]) -> None:
        while not self._inbox.empty() and len(batch) < self.settings.batch:
            batch.append(self._inbox.get_nowait())

    async def _timer_loop(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.tick_seconds)
            try:
                await self.ring_due()
                await self.extensions.tick()
                if loop.time() - last_sweep >= self.settings.sweep_seconds:
                    last_sweep = loop.time()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("coordinator timers: %s", exc)

    # -- work -----------------------------------------------------------------------------
    async def advance(self, run_ids: Iterable[str], prefetched: Prefetched | None = None) -> None:
        """Advance each run's graph as far as it can go now (several runs at once); a run's
        first pass uses its read from ``prefetched`` when that is still current."""
        ids = list(dict.fromkeys(run_ids))
        ahead = prefetched or {}
        if len(ids) <= 1 or self.settings.parallel_runs <= 1:
            for run_id in ids:
                with contextlib.suppress(NotFound):
                    await self._advance_one(run_id, ahead.get(run_id))
            return
        gate = asyncio.Semaphore(self.settings.parallel_runs)

        async def one(run_id: str) -> None:
            async with gate:
                with contextlib.suppress(NotFound):
                    await self._advance_one(run_id, ahead.get(run_id))

        results = await asyncio.gather(*(one(r) for r in ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _advance_one(
        self, run_id: str, prefetched: tuple[PassRead, RunDelta] | None = None
    ) -> None:
        # One pass at a time per run in this process (the advance loop and the sweep may both
        # want it): overlapping passes would race on the cached copy and lose each other's
        # compare-and-sets, each loss costing a full reload of the run.
        held = _HELD_RUNS.get()
        if run_id in held:
            await self._advance_passes(run_id, prefetched)
            return
        entry = self._run_locks.get(run_id)
        if entry is None:
            entry = self._run_locks[run_id] = [asyncio.Lock(), 0]
        lock: asyncio.Lock = entry[0]
        entry[1] += 1
        try:
            async with lock:
                token = _HELD_RUNS.set(held | {run_id})
                try:
                    await self._advance_passes(run_id, prefetched)
                finally:
                    _HELD_RUNS.reset(token)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._run_locks.pop(run_id, None)

    async def _advance_passes(
        self, run_id: str, prefetched: tuple[PassRead, RunDelta] | None = None
    ) -> None:
        # Skips and template failures can unblock further tasks at once, so decide again
        # until a pass changes no task status.
        with logcontext.bind(run_id):
            if await self._still_finished(run_id):
                return
            for _ in range(1000):
                if not await self._advance_pass(run_id, prefetched):
                    return
                prefetched = None

    async def _load(
        self, run_id: str, prefetched: tuple[PassRead, RunDelta] | None = None
    ) -> tuple[RunState, list[LayerRecord]]:
        """The run as of now: the cached copy brought up to date by a read of what is open
        (``prefetched`` when it was made for this copy since its last pass), or, when that
        does not add up (or nothing is cached), a full read."""
        state = self._states.get(run_id)
        if state is None:
            # Nothing cached (a new run, or a copy dropped): both reads at once, on two
            # connections; they were two snapshots one after the other before as well.
            delta, tasks = await asyncio.gather(
                self._reads.submit((run_id, True)), self._full_reads.submit(run_id)
            )
        else:
            if prefetched and prefetched[0].state is state and prefetched[0].passes == state.passes:
                delta = prefetched[1]
            else:
                delta = await self._reads.submit((run_id, state.has_layers))
            try:
                state.absorb(delta)
                return state, delta.layers
            except StaleState as exc:
                self.reloads += 1
                log.debug("reloading run %s: %s", run_id, exc)
            tasks = await self._full_reads.submit(run_id)
        state = RunState(delta.run, tasks, bool(delta.layers))
        self._states[run_id] = state
        while len(self._states) > STATE_CACHE_RUNS:
            self._states.pop(next(iter(self._states)))
        return state, delta.layers

    async def _advance_pass(
        self, run_id: str, prefetched: tuple[PassRead, RunDelta] | None = None
    ) -> bool:
        state, layers = await self._load(run_id, prefetched)
        state.passes += 1
        run = state.run
        if run.status == RunStatus.PENDING and not await self.extensions.admit(run):
            return False  # waits for a concurrency slot
        now = await self.store.now()
        # A run timing out cancels every task, so it sees them all, read afresh (the copy does
        # not follow claims, and a kill must name the running ones); otherwise the scheduler
        # sees the top-level tasks and each group's open children and next pending ones.
        timing_out = run.deadline_at is not None and now >= run.deadline_at
        if timing_out:
            self._states.pop(run_id, None)
            state, layers = await self._load(run_id)
            run = state.run
        tasks, child_counts = state.view(self.settings.fanout_window, everything=timing_out)
        window = self.settings.fanout_window
        decision = decide(run, tasks, now, layers, child_counts, window, state.max_seq + 1)
        self.advanced += 1
        for parent in decision.groups_done:
            children = await self.store.get_children(parent.id)
            decision.task_changes.append(finish_group(parent, children, now))
        layers_won = await self.store.update_layers(decision.layer_changes)
        expanded = 0
        stale = False
        for change, children in decision.expansions:
            # The parent's compare-and-set and its children's rows go in one transaction, so
            # nobody sees a running group without its children (or children twice).
            if await self.store.expand_task(change, children):
                expanded += 1
                state.expanded(change, children)
            else:
                stale = True
        run_change = (run.id, run.version, decision.run_values) if decision.run_values else None
        events = [(run.id, kind, "coordinator", detail) for kind, detail in decision.events]
        write = DecisionWrite(decision.task_changes, decision.settled, run_change, events)
        claiming = await self._reserve_local(decision)
        if claiming:
            (won_ids, updated), claimed = await self._write_claiming(write, claiming)
        else:
            won_ids, updated = await self._writes.submit(write)
            claimed = []
        won = set(won_ids)
        state.settled(decision.settled)
        state.won(decision.task_changes, won)
        if updated is not None:
            state.run = updated
        if stale or len(won) < len(decision.task_changes) or (run_change and updated is None):
            # Someone else moved first: our copy is behind, read it afresh next time.
            self._states.pop(run_id, None)
        queued_ids = {t.id for t in decision.queued}
        taken = {task.id for task, _ in claimed}
        await self.publish([t for t in decision.queued if t.id in won and t.id not in taken])
        tracing.record_dispatch(run, [t for t in decision.queued if t.id in won])
        for task, rendered in decision.subworkflows:
            if task.id in won:
                await start_child(self.store, self.broker, run, task, rendered)
        self.kill([k for k in decision.kills if k in won])
        if RunStatus(state.run.status).terminal:
            self._forget(run_id)
        if updated is not None and RunStatus(updated.status).terminal:
            self._notify_finished(updated)
            metrics.observe_run(updated)
            tracing.record_completion(updated)
            log.info("run %s of %s %s", updated.id, updated.definition_name, updated.status)
            if updated.parent_id:
                await child_finished(self.store, self.broker, updated)
            await self.extensions.run_finished(updated)
        return (
            bool(expanded)
            or bool(layers_won)
            or any(
                "status" in c.values and c.task_id in won and c.task_id not in queued_ids
                for c in decision.task_changes
            )
        )

    async def _still_finished(self, run_id: str) -> bool:
        """Whether a run this coordinator saw finish is still finished with every task
        settled, from a read of its row and its unsettled tasks only (no pass is then due)."""
        if run_id not in self._finished or run_id in self._states:
            return False
        delta = await self._reads.submit((run_id, False))
        if RunStatus(delta.run.status).terminal and not delta.rows:
            return True
        self._finished.pop(run_id, None)  # reopened (a retry, a rerun), or late reports
        return False

    def _forget(self, run_id: str) -> None:
        """Drop a finished run's copy; remember that it finished."""
        self._states.pop(run_id, None)
        self._finished[run_id] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.pop(next(iter(self._finished)))

    async def _reserve_local(self, decision: Decision) -> list[TaskRecord]:
        """Tasks the pass queues that this process's worker can claim in the pass's own write:
        slots reserved for them, when the store writes and claims in one step and nothing
        (a wait, a rate limit) would hold them back before their doorbell."""
        local = self.local_worker
        if local is None or not decision.queued or not isinstance(self.store, ClaimingPassStore):
            return []
        rates = self.settings.queue_rates
        return await local.reserve([t for t in decision.queued if rung_at_once(t, rates)])

    async def _write_claiming(
        self, write: DecisionWrite, reserved: list[TaskRecord]
    ) -> tuple[Applied, list[tuple[TaskRecord, AttemptRecord]]]:
        """The pass's write, claiming the reserved tasks it queues for the local worker."""
        local = self.local_worker
        assert local is not None
        try:
            applied, claimed = await self._claiming.submit((write, [t.id for t in reserved]))
        except BaseException:
            local.begin(reserved, [])
            raise
        local.begin(reserved, claimed)
        return applied, claimed

    async def _claim_one(self, request: ClaimingRequest) -> ClaimingResult:
        local, store = self.local_worker, self.store
        assert local is not None and isinstance(store, ClaimingPassStore)
        return await store.apply_and_claim(*request, local.id, local.lease_seconds)

    async def _claim_many(self, requests: Sequence[ClaimingRequest]) -> list[ClaimingResult]:
        local, store = self.local_worker, self.store
        assert local is not None and isinstance(store, ClaimingPassStore)
        return await store.apply_and_claim_many(requests, local.id, local.lease_seconds)

    async def _read_one(self, request: tuple[str, bool]) -> RunDelta:
        return await load_run_delta(self.store, *request)

    def kill(self, task_ids: Sequence[str]) -> None:
        """Stop running attempts of these tasks in this process's workers at once."""
        if task_ids:
            for hook in self.kill_hooks:
                hook(task_ids)

    def _notify_finished(self, run: RunRecord) -> None:
        for waiter in self._waiters.pop(run.id, []):
            if not waiter.done():
                waiter.set_result(run)

    def finished_future(self, run_id: str) -> asyncio.Future[RunRecord]:
        """A future resolved when this coordinator sees ``run_id`` finish (in-process waits)."""
        future: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        return future

    def pass_read(self, run_id: str) -> PassRead | None:
        """The read of the next pass over a run a worker here is about to advance (see
        holds_alone), to be made with its report; None without a copy of the run."""
        state = self._states.get(run_id)
        if state is None:
            return None
        return PassRead(run_id, state.has_layers, state, state.passes)

    async def plan_step(self, run_id: str, outcome: AttemptOutcome) -> step_ahead.StepPlan | None:
        """The pass after a worker's report of ``outcome``, decided on this coordinator's
        copy before the report is stored, when it is a chain's step the store can apply
        with the report (engine/step_ahead.py); None otherwise, having changed nothing."""
        state = self._states.get(run_id)
        store = self.store
        if (
            state is None
            or not isinstance(store, SteppingStore)
            or run_id in self._run_locks
            or not step_ahead.may_step(state, outcome)
        ):
            return None
        passes = state.passes
        now = await store.now()
        if self._states.get(run_id) is not state or state.passes != passes:
            return None  # a pass came in between
        run = state.run
        if run.deadline_at is not None and now >= run.deadline_at:
            return None  # the run times out: an ordinary pass cancels everything
        reported = step_ahead.finished(
            state.tasks[outcome.task_id], outcome, store.as_stored(outcome.output), now
        )
        window = self.settings.fanout_window
        seen, counts = state.view(window)
        tasks = [reported if task.id == reported.id else task for task in seen]
        decision = decide(run, tasks, now, [], counts, window, state.max_seq + 1)
        change = step_ahead.chain_step(decision, reported.id)
        if change is None or not rung_at_once(decision.queued[0], self.settings.queue_rates):
            return None
        return step_ahead.StepPlan(
            state,
            passes,
            step_ahead.fingerprint(state),
            reported,
            change,
            decision.queued[0],
            now,
        )

    async def after_step(self, plan: step_ahead.StepPlan, result: StepResult) -> None:
        """Bring the copy up to date with a step the store applied; when it did not apply
        it (the run had moved, the report was stale) or the next task was not claimed, an
        ordinary pass over a fresh read of the run."""
        state = self._states.get(plan.run_id)
        current = state is plan.state and state.passes == plan.passes
        if state is not None and current and result.stepped and result.claimed:
            assert result.reported_version is not None
            state.reported(
                dataclasses.replace(plan.reported, version=result.reported_version, settled=True)
            )
            state.won([plan.change], {plan.change.task_id})
            state.passes += 1
            self.advanced += 1
            tracing.record_dispatch(state.run, [plan.queued])
            return
        if state is plan.state:
            self._states.pop(plan.run_id, None)
        await self.advance([plan.run_id])

    def holds_alone(self, run_id: str, reporting: int) -> bool:
        """Whether ``reporting`` just-finished tasks are all the run had open, as far as this
        coordinator's copy knows (or it has none yet): nobody else is then likely to be
        advancing the run, so a worker in this process may advance it itself."""
        state = self._states.get(run_id)
        return state is None or state.open_total <= reporting

    async def publish(self, tasks: Sequence[TaskRecord]) -> None:
        """Ring the doorbell of each task's queue (or hand the tasks to a worker here)."""
        ready = await self.extensions.before_publish(tasks)
        if self.local_worker is not None and ready:
            # Every queued task is owed one claim: a doorbell, or the worker's claim here.
            ready = await self.local_worker.take_over(ready)
        by_queue: dict[str, list[str]] = defaultdict(list)
        for task in ready:
            by_queue[task.queue].append(task.id)
        for queue, ids in by_queue.items():
            await self._bells.submit((queue, ids))

    async def _ring_one(self, bell: tuple[str, list[str]]) -> None:
        await self.broker.publish(*bell)

    async def _ring_many(self, bells: Sequence[tuple[str, list[str]]]) -> list[None]:
        """Concurrent passes' doorbells, one publish per queue."""
        by_queue: dict[str, list[str]] = defaultdict(list)
        for queue, ids in bells:
            by_queue[queue].extend(ids)
        for queue, ids in by_queue.items():
            await self.broker.publish(queue, ids)
        return [None] * len(bells)

    async def ring_due(self) -> int:
        """Publish queued tasks that are due and unanswered (retries after backoff, lost bells)."""
        now = await self.store.now()
        due = await self.store.due_tasks(
            now, now - timedelta(seconds=self.settings.redeliver_after), self.settings.batch
        )
        if due:
            due = await self._answerable(due)
        if due:
            await self.store.mark_published([t.id for t in due], now)
            await self.publish(due)
        return len(due)

    async def _answerable(self, due: list[TaskRecord]) -> list[TaskRecord]:
        """``due`` without the doorbells rung again that no worker could answer now.

        A task whose doorbell rang more than ``redeliver_after`` ago is rung again in case the
        bell was lost. Behind a backlog the bell is only waiting its turn in the broker, and
        ringing every such task again (a batch per tick) cost as much as the work itself:
        100,000 queued tasks took 66 s instead of 53 s. So a queue whose workers report every
        slot busy gets no bell rung again, and one with free slots at most as many as those
        (a lost bell matters once a worker is idle). First bells (a retry's backoff ended, a
        rate-limited slot came) always ring; so do queues no registered worker serves.
        """
        again = {
            t.id
            for t in due
            if t.published_at is not None
            and (t.available_at is None or t.published_at >= t.available_at)
        }
        if not again:
            return due
        spare: dict[str, int] = defaultdict(int)
        for worker in await self.store.list_workers():
            if worker.status != "alive":
                continue
            free = max(0, sum(worker.queues.values()) - worker.in_flight)
            for queue, slots in worker.queues.items():
                spare[queue] += min(free, slots)
        rung_again: dict[str, int] = defaultdict(int)
        kept: list[TaskRecord] = []
        for task in due:
            if task.id in again and task.queue in spare:
                if rung_again[task.queue] >= spare[task.queue]:
                    continue
                rung_again[task.queue] += 1
            kept.append(task)
        return kept

    async def sweep(self) -> None:
        """Re-queue tasks whose lease expired and advance runs with unseen finished tasks."""
        changed = await self.store.expire_leases(self.settings.delivery_limit)
        metrics.LEASE_EXPIRIES.inc(len(changed))
        for task in changed:
            log.warning(
                "lease of task %s expired; now %s",
                task.id,
                task.status,
                extra={"run_id": task.run_id, "task_id": task.id},
            )
        # A run is the sweep's only once the previous sweep saw it unsettled too: a report
        # and the pass that follows it are two statements on some paths, and a sweep that
        # advanced the run between them raced the worker's own pass (its write lost, the
        # run's next step went to whichever worker rang first).
        # A full batch takes no turns: which runs a limited read returns may change from one
        # sweep to the next, and waiting for a second sighting could then wait for ever.
        found = await self.store.unsettled_run_ids(self.settings.batch)
        unsettled = set(found)
        full = len(found) >= self.settings.batch
        run_ids = unsettled if full else unsettled & self._unsettled_seen
        self._unsettled_seen = unsettled
        run_ids.update(t.run_id for t in changed)
        now = await self.store.now()
        run_ids.update(await self.store.overdue_run_ids(now, self.settings.batch))
        if run_ids:
            await self.advance(sorted(run_ids))
