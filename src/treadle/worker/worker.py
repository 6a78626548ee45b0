"""The worker loop: per-queue concurrency, batched claims and reports, heartbeats, shutdown.

A doorbell from the broker names a task id. The worker claims it in the store (a compare-and-set
that creates an attempt holding a lease), acknowledges the message, runs the attempt, and
reports the outcome fenced by the attempt id. Leases are renewed by a heartbeat; an attempt
whose lease the store no longer honours is stopped.

Outcomes are reported in batches, and a slot stays taken until its outcome is recorded. When
doorbells for the same queue are already waiting, the report claims for the slots it frees in
the same store call (``Store.finish_and_claim``), so a busy worker makes one round trip per
batch of work instead of a report and then a claim.

A worker may also advance the runs it reports (``advancer``, a coordinator of its own without
loops): when the tasks it just finished were all the run had open, it decides the next step
itself and claims the tasks that pass queued for its own free slots (reserved before the
pass's write, which claims them in the same statement where the store can), with no message
to the coordinator and no doorbell. Any other run goes to the coordinators' queue as before; what
the worker leaves undone (it crashes in between) the coordinators' sweep finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from treadle.broker._common import ack_all
from treadle.broker.base import COORDINATOR_QUEUE, Broker, Delivery
from treadle.model.routing import container_queue
from treadle.model.states import AttemptStatus, TaskStatus
from treadle.observability import logcontext, metrics, tracing
from treadle.secrets.attempt import SecretSource
from treadle.store.base import Store
from treadle.store.batch import finish_and_read
from treadle.store.delta import RunDelta
from treadle.store.records import (
    AttemptOutcome,
    AttemptRecord,
    NewLog,
    TaskRecord,
    WorkerRecord,
)
from treadle.store.stepping import SteppingStore, StepResult
from treadle.worker.runner import run_attempt

if TYPE_CHECKING:
    from treadle.engine.coordinator import Coordinator, PassRead, Prefetched
    from treadle.engine.step_ahead import StepPlan

log = logging.getLogger(__name__)


def _log_stale(
    outcomes: Sequence[tuple[AttemptOutcome, str, Any]], accepted: Sequence[str]
) -> None:
    if len(accepted) >= len(outcomes):
        return
    kept = set(accepted)
    for outcome, run_id, _ in outcomes:
        if outcome.attempt_id not in kept:
            log.info(
                "stale result(s) rejected by the store for attempt %s: its lease had expired "
                "and the task moved on",
                outcome.attempt_id,
                extra={
                    "run_id": run_id,
                    "task_id": outcome.task_id,
                    "attempt_id": outcome.attempt_id,
                },
            )


def _log_outcome(
    task: TaskRecord, attempt: AttemptRecord, outcome: AttemptOutcome, seconds: float
) -> None:
    if outcome.attempt_status == AttemptStatus.COMPLETED.value:
        # Debug, as the start: the store keeps every attempt, and a line per task was a tenth
        # of a worker's CPU per no-op step.
        log.debug("task %s attempt %d completed in %.3fs", task.name, attempt.number, seconds)
        return
    then = (
        "will be retried"
        if outcome.task_status == TaskStatus.QUEUED.value
        else f"task is {outcome.task_status}"
    )
    log.warning(
        "task %s attempt %d %s after %.3fs: %s; %s",
        task.name,
        attempt.number,
        outcome.attempt_status,
        seconds,
        outcome.error,
        then,
    )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: Mapping[str, int] = field(default_factory=lambda: {"default": os.cpu_count() or 2})
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    grace_seconds: float = 30.0
    # How often in-flight attempts are checked against the store, so an operator's kill stops
    # a process on any worker within about this long (cheap: one indexed read).
    kill_check_seconds: float = 0.5
    runtime_settings: Mapping[str, Any] = field(default_factory=dict)
    worker_id: str | None = None


def _ids(task: TaskRecord, attempt_id: str) -> dict[str, str]:
    return {"run_id": task.run_id, "task_id": task.id, "attempt_id": attempt_id}


@dataclass(frozen=True, slots=True, eq=False)
class _Lane:
    """One served queue: its concurrency and the doorbells delivered for it (and its container
    twin), waiting for a free slot."""

    queue: str
    slots: asyncio.Semaphore
    inbox: asyncio.Queue[tuple[str, Delivery]]


@dataclass(slots=True)
class _InFlight:
    task: TaskRecord
    attempt: AttemptRecord
    job: asyncio.Task[None]


def _keep_slots(
    outcomes: Sequence[tuple[AttemptOutcome, str, _Lane]], mine: Sequence[str]
) -> tuple[dict[str, _Lane], list[tuple[AttemptOutcome, str, _Lane]]]:
    """One reported slot per run in ``mine`` stays taken for the run's next step (the others
    are free): released, it would go to whatever doorbell waits (another run's step), and the
    step this worker is about to queue would need a doorbell and maybe another worker."""
    wanted = set(mine)
    kept: dict[str, _Lane] = {}
    free: list[tuple[AttemptOutcome, str, _Lane]] = []
    for outcome, run_id, lane in outcomes:
        if run_id in wanted and run_id not in kept:
            kept[run_id] = lane
        else:
            free.append((outcome, run_id, lane))
    return kept, free


class Worker:
    """Runs attempts from the queues it serves."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        settings: WorkerSettings | None = None,
        capabilities: Mapping[str, Any] | None = None,
        secret_source: SecretSource | None = None,
    ) -> None:
        self.store = store
        # Where ``{{ secrets.NAME }}`` values come from (None: tasks using one fail).
        self.secret_source = secret_source
        self.broker = broker
        self.settings = settings or WorkerSettings()
        self.id = (
            self.settings.worker_id
            or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.capabilities = dict(capabilities or {})
        self._in_flight: dict[str, _InFlight] = {}
        # (outcome, run id, the lane whose slot it holds until the store has recorded it)
        self._outcomes: list[tuple[AttemptOutcome, str, _Lane]] = []
        self._logs: list[NewLog] = []
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._closing = False
        self.completed = 0
        self._traceparents: dict[str, str | None] = {}
        # Broker queue name -> the lane serving it (a queue and its container twin share one).
        self._lanes: dict[str, _Lane] = {}
        #: Advances the runs this worker reported when it holds them alone (module docstring).
        self.advancer: Coordinator | None = None
        # Run id -> the lane whose slot its report kept for its next step, while it is advanced.
        self._kept: dict[str, _Lane] = {}

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self._register("alive")
        for queue, concurrency in self.settings.queues.items():
            self._loops.append(
                asyncio.create_task(self._serve(queue, concurrency), name=f"worker-{queue}")
            )
        self._loops.append(asyncio.create_task(self._flush_loop(), name="worker-flush"))
        self._loops.append(asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"))
        self._loops.append(asyncio.create_task(self._kill_check_loop(), name="worker-killcheck"))

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, let in-flight attempts finish within ``grace``, then kill them."""
        self._stopping = True
        serving = [
            t
            for t in self._loops
            if t.get_name().startswith("worker-")
            and t.get_name() not in {"worker-flush", "worker-heartbeat", "worker-killcheck"}
        ]
        for task in serving:
            task.cancel()
        jobs = [f.job for f in self._in_flight.values()]
        if jobs:
            _, pending = await asyncio.wait(
                jobs, timeout=self.settings.grace_seconds if grace is None else grace
            )
            for job in pending:
                job.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        # The flush loop may be sending outcomes right now: cancelled mid-call it would put
        # them back in memory with nobody left to send them. Let it end its round, then send
        # whatever is left here.
        self._closing = True
        flusher = [t for t in self._loops if t.get_name() == "worker-flush"]
        if flusher:
            self._wake.set()
            await asyncio.wait(flusher, timeout=self.settings.lease_seconds)
        await self._flush()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        with contextlib.suppress(Exception):
            await self._register("stopped")

    async def _register(self, status: str) -> None:
        now = await self.store.now()
        await self.store.upsert_worker(
            WorkerRecord(
                id=self.id,
                host=socket.gethostname(),
                queues=dict(self.settings.queues),
                started_at=now,
                last_seen=now,
                status=status,
                in_flight=len(self._in_flight),
                capabilities=self.capabilities,
            )
        )

    # -- taking work ----------------------------------------------------------------------
    def broker_queues(self, queue: str) -> list[str]:
        """The broker queues behind one served queue: its container twin too when capable."""
        if self.capabilities.get("containers"):
            return [queue, container_queue(queue)]
        return [queue]

    async def _serve(self, queue: str, concurrency: int) -> None:
        # One concurrency for the queue and its container twin: both feed one inbox.
        slots = asyncio.Semaphore(concurrency)
        inbox: asyncio.Queue[tuple[str, Delivery]] = asyncio.Queue()
        lane = _Lane(queue, slots, inbox)
        for name in self.broker_queues(queue):
            self._lanes[name] = lane

        async def feed(name: str) -> None:
            while True:
                try:
                    async for delivery in self.broker.consume(name, prefetch=concurrency):
                        await inbox.put((name, delivery))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.BROKER_ERRORS.labels("consume").inc()
                    log.warning("consuming %s interrupted: %s", name, exc)
                    await asyncio.sleep(1.0)
                    continue
                # The stream ended without an error: the broker is closing. Never call consume
                # again at once: on a closed broker it ends at once without awaiting anything,
                # and this loop would spin without ever letting the event loop run.
                if self._stopping:
                    return
                await asyncio.sleep(1.0)

        feeders = [asyncio.create_task(feed(name)) for name in self.broker_queues(queue)]
        try:
            while True:
                await slots.acquire()
                batch = [await inbox.get()]
                while not inbox.empty() and slots._value > 0:
                    await slots.acquire()
                    batch.append(inbox.get_nowait())
                by_queue: dict[str, list[Delivery]] = {}
                for name, delivery in batch:
                    by_queue.setdefault(name, []).append(delivery)
                for name, deliveries in by_queue.items():
                    await self._claim_batch(name, deliveries, lane)
        finally:
            for feeder in feeders:
                feeder.cancel()

    async def _claim_batch(self, queue: str, batch: list[Delivery], lane: _Lane) -> None:
        try:
            # A doorbell says "work is ready on this queue"; which task runs is the store's
            # choice: the highest priority due one. Every queued task has rung once, so the
            # count of claims matches the count of ready tasks.
            claimed = await self.store.claim_next(
                queue, len(batch), self.id, self.settings.lease_seconds
            )
        except Exception as exc:
            metrics.STORE_ERRORS.labels("claim").inc()
            log.warning("claim failed, giving %d messages back: %s", len(batch), exc)
            for delivery in batch:
                await delivery.nack()
                lane.slots.release()
            await asyncio.sleep(0.5)
            return
        self._start_attempts(claimed, lane)
        for _ in range(len(batch) - len(claimed)):
            lane.slots.release()
        # Acked once the attempts are under way, so the broker's round trip does not delay
        # them (a crash before the ack redelivers doorbells whose claims then find nothing).
        # Unclaimed ones were duplicates or are not due: the store is the truth.
        await ack_all(batch)

    def _start_attempts(
        self, claimed: Sequence[tuple[TaskRecord, AttemptRecord]], lane: _Lane
    ) -> None:
        """Run each claimed attempt in the lane slot it was claimed for."""
        for task, attempt in claimed:
            job = asyncio.create_task(self._execute(task, attempt, lane))
            self._in_flight[attempt.id] = _InFlight(task, attempt, job)

    async def _execute(self, task: TaskRecord, attempt: AttemptRecord, lane: _Lane) -> None:
        with logcontext.bind(task.run_id, task.id, attempt.id):
            await self._execute_bound(task, attempt, lane)

    async def _execute_bound(self, task: TaskRecord, attempt: AttemptRecord, lane: _Lane) -> None:
        started = asyncio.get_running_loop().time()
        metrics.IN_FLIGHT.inc()
        log.debug("task %s attempt %d started", task.name, attempt.number)
        try:
            outcome = await self._traced_attempt(task, attempt)
        except asyncio.CancelledError:
            if self._stopping:
                # Graceful stop ran out of time: hand the task back for another worker.
                outcome = AttemptOutcome(
                    attempt.id,
                    task.id,
                    AttemptStatus.CANCELLED.value,
                    TaskStatus.QUEUED.value,
                    None,
                    "worker stopped before the attempt finished",
                )
            else:
                outcome = AttemptOutcome(
                    attempt.id,
                    task.id,
                    AttemptStatus.CANCELLED.value,
                    TaskStatus.CANCELLED.value,
                    None,
                    "killed",
                )
        finally:
            self._in_flight.pop(attempt.id, None)
            metrics.IN_FLIGHT.dec()
        seconds = asyncio.get_running_loop().time() - started
        _log_outcome(task, attempt, outcome, seconds)
        metrics.observe_attempt(str(task.spec.get("kind", "")), outcome, seconds)
        # The slot stays taken until the outcome is recorded: the store then never shows more
        # than N running attempts of a queue for this worker (and a store outage holds back
        # new claims instead of piling up unreported results).
        self._outcomes.append((outcome, task.run_id, lane))
        self._wake.set()

    async def _traced_attempt(self, task: TaskRecord, attempt: AttemptRecord) -> AttemptOutcome:
        """Run the attempt inside its span (a child of the run's trace when tracing is on)."""
        parent = await self._run_traceparent(task.run_id) if tracing.enabled() else None
        attributes = {
            "treadle.run_id": task.run_id,
            "treadle.task_id": task.id,
            "treadle.task": task.name,
            "treadle.attempt_id": attempt.id,
            "treadle.attempt": attempt.number,
            "treadle.kind": str(task.spec.get("kind", "")),
            "treadle.worker_id": self.id,
        }
        with tracing.span("treadle.task.attempt", attributes, parent) as current:
            outcome = await run_attempt(
                task,
                attempt,
                self._log_sink(task, attempt),
                self.settings.runtime_settings,
                await self.store.now(),
                heartbeat=lambda: self.renew(attempt.id),
                trace_headers=tracing.current_headers(),
                secret_source=self.secret_source,
            )
            if outcome.attempt_status != AttemptStatus.COMPLETED.value:
                tracing.set_error(current, outcome.error or outcome.attempt_status)
            return outcome

    async def _run_traceparent(self, run_id: str) -> str | None:
        """The run's trace (kept in its labels), remembered for the run's next attempts."""
        if run_id in self._traceparents:
            return self._traceparents[run_id]
        try:
            run = await self.store.get_run(run_id)
        except Exception as exc:  # tracing must never fail an attempt
            log.debug("no trace parent for run %s: %s", run_id, exc)
            return None
        value = tracing.run_traceparent(run.labels)
        self._traceparents[run_id] = value
        while len(self._traceparents) > 1000:
            self._traceparents.pop(next(iter(self._traceparents)))
        return value

    def _log_sink(self, task: TaskRecord, attempt: AttemptRecord) -> Any:
        def sink(stream: str, text: str) -> None:
            self._logs.append(NewLog(task.run_id, task.id, attempt.id, stream, text))

        return sink

    # -- reporting ------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        # Python 3.11's wait_for can swallow a cancel that races the event being set, so the
        # loop also ends on the closing flag rather than on cancellation alone.
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.2)
            self._wake.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.STORE_ERRORS.labels("report").inc()
                log.warning("reporting outcomes failed, will retry: %s", exc)
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        logs, self._logs = self._logs, []
        outcomes, self._outcomes = self._outcomes, []
        counts = Counter(run for _, run, _ in outcomes)
        mine = self._held_alone(counts)
        kept, free = _keep_slots(outcomes, mine)
        lane, doorbells = self._doorbells_for(free)
        claimed: list[tuple[TaskRecord, AttemptRecord]] = []
        prefetched: dict[str, tuple[PassRead, RunDelta]] = {}
        step: tuple[StepPlan, StepResult] | None = None
        try:
            if logs:
                await self.store.append_logs(logs)
            if outcomes:
                step = await self._step(outcomes, kept)
            if outcomes and step is None:
                claimed = await self._report(outcomes, mine, lane, doorbells, prefetched)
        except BaseException:
            # Keep them for the next flush: nothing is lost while the store is away.
            self._logs[:0] = logs
            self._outcomes[:0] = outcomes
            if lane is not None:
                for bell in doorbells:
                    lane.inbox.put_nowait(bell)
            raise
        if lane is not None and claimed:
            # The new attempts take over the slots of the reported ones.
            self._start_attempts(claimed, lane)
        for _, _, held in free[len(claimed) :]:
            held.slots.release()
        if doorbells:
            # As for any claim: doorbells beyond what was claimed were duplicates or not due.
            await ack_all([delivery for _, delivery in doorbells])
        if outcomes:
            self.completed += len(outcomes)
            self._kept = kept
            try:
                await self._advance_reported(counts, mine, prefetched, step)
            finally:
                for held in self._kept.values():
                    held.slots.release()
                self._kept = {}

    async def _step(
        self,
        outcomes: Sequence[tuple[AttemptOutcome, str, _Lane]],
        kept: dict[str, _Lane],
    ) -> tuple[StepPlan, StepResult] | None:
        """Report a run's only open task together with its next step, decided ahead on the
        advancer's copy (engine/step_ahead.py); None, having stored nothing, when the report
        is not that (several outcomes, no copy, not a chain's step)."""
        advancer = self.advancer
        store = self.store
        if (
            advancer is None
            or len(outcomes) != 1
            or len(kept) != 1
            or not isinstance(store, SteppingStore)
        ):
            return None
        outcome, run_id, lane = outcomes[0]
        plan = await advancer.plan_step(run_id, outcome)
        if plan is None or self._lanes.get(plan.queued.queue) is not lane or self._stopping:
            return None
        result = await store.finish_and_step(
            outcome, plan.expected, plan.change, self.id, self.lease_seconds, plan.now
        )
        _log_stale(outcomes, result.accepted)
        if result.claimed:
            # The next step's attempt takes over the slot the report kept for it.
            del kept[run_id]
            self._start_attempts(result.claimed, lane)
        return plan, result

    async def _report(
        self,
        outcomes: Sequence[tuple[AttemptOutcome, str, _Lane]],
        mine: Sequence[str],
        lane: _Lane | None,
        doorbells: Sequence[tuple[str, Delivery]],
        prefetched: dict[str, tuple[PassRead, RunDelta]],
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Record the outcomes; claim for the doorbells given, or read the runs this worker
        advances next (into ``prefetched``); return what was claimed."""
        reported = [o for o, _, _ in outcomes]
        claimed: list[tuple[TaskRecord, AttemptRecord]] = []
        reads = self._pass_reads(mine) if not doorbells else []
        if lane is not None and doorbells:
            accepted, claimed = await self.store.finish_and_claim(
                reported, lane.queue, len(doorbells), self.id, self.settings.lease_seconds
            )
        elif reads:
            # The passes this worker is about to make read their runs in the same round
            # trip as the report (one statement on PostgreSQL).
            accepted, deltas = await finish_and_read(
                self.store, reported, [read.request for read in reads]
            )
            for read, delta in zip(reads, deltas, strict=True):
                if isinstance(delta, RunDelta):
                    prefetched[read.run_id] = (read, delta)
        else:
            accepted = await self.store.finish_attempts(reported)
        _log_stale(outcomes, accepted)
        return claimed

    def _held_alone(self, reported: Counter[str]) -> list[str]:
        """The reported runs this worker advances itself (see the module docstring)."""
        advancer = self.advancer
        if advancer is None:
            return []
        return [run_id for run_id, n in reported.items() if advancer.holds_alone(run_id, n)]

    def _pass_reads(self, mine: Sequence[str]) -> list[PassRead]:
        """The pass reads to make with this report: of the runs this worker will advance
        (``mine``) whose copy its advancer holds."""
        advancer = self.advancer
        if advancer is None:
            return []
        reads = [advancer.pass_read(run_id) for run_id in mine]
        return [read for read in reads if read is not None]

    async def _advance_reported(
        self,
        reported: Counter[str],
        mine: list[str],
        prefetched: Prefetched | None = None,
        step: tuple[StepPlan, StepResult] | None = None,
    ) -> None:
        """Advance here the runs this worker holds alone (``mine``; after a ``step`` stored
        with the report, its one run is brought up to date); the coordinators get the
        others."""
        advancer = self.advancer
        held = set(mine)
        others = [r for r in reported if r not in held]
        if advancer is not None and mine:
            try:
                if step is not None:
                    await advancer.after_step(*step)
                else:
                    await advancer.advance(mine, prefetched)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "advancing %d run(s) here failed, the coordinator will: %s", len(mine), exc
                )
                others.extend(mine)
        if others:
            await self.broker.publish(COORDINATOR_QUEUE, others)

    @property
    def lease_seconds(self) -> float:
        """How long a claim of this worker holds its task without a heartbeat."""
        return self.settings.lease_seconds

    async def reserve(self, tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Take a free slot of this worker for each of ``tasks`` it can, in order; return
        those tasks. Each must then be given to :meth:`begin`, claimed or not."""
        reserved: list[TaskRecord] = []
        for task in tasks:
            lane = self._lanes.get(task.queue)
            if self._stopping or lane is None:
                continue
            if self._kept.get(task.run_id) is lane:
                del self._kept[task.run_id]  # the slot its run's report kept (see _flush)
            elif lane.slots.locked():
                continue
            else:
                await lane.slots.acquire()  # free: returns at once
            reserved.append(task)
        return reserved

    def begin(
        self,
        reserved: Sequence[TaskRecord],
        claimed: Sequence[tuple[TaskRecord, AttemptRecord]],
    ) -> None:
        """Run the claimed attempts in the slots :meth:`reserve` took; free the others."""
        for task, attempt in claimed:
            self._start_attempts([(task, attempt)], self._lanes[task.queue])
        got = {task.id for task, _ in claimed}
        for task in reserved:
            if task.id not in got:
                self._lanes[task.queue].slots.release()

    async def take_over(self, tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Claim just-queued tasks on free slots of this worker's lanes, instead of ringing
        their doorbells; return the tasks left to ring for (no free slot, or not claimed).

        The very tasks are claimed (not the queue's best), so a run's next step stays with
        the worker that has the run's state at hand, and two workers advancing different runs
        do not take each other's next steps. A task not claimed here (another worker's
        doorbell claim took it, or it is not due yet) gets its doorbell as usual.
        """
        reserved = await self.reserve(tasks)
        claimed: list[tuple[TaskRecord, AttemptRecord]] = []
        if reserved:
            try:
                claimed = await self.store.claim(
                    [task.id for task in reserved], self.id, self.lease_seconds
                )
            except Exception as exc:
                metrics.STORE_ERRORS.labels("claim").inc()
                log.warning("claim for handed-over tasks failed, ringing for them: %s", exc)
        self.begin(reserved, claimed)
        got = {task.id for task, _ in claimed}
        return [task for task in tasks if task.id not in got]

    def _doorbells_for(
        self, outcomes: Sequence[tuple[AttemptOutcome, str, _Lane]]
    ) -> tuple[_Lane | None, list[tuple[str, Delivery]]]:
        """Doorbells already delivered for the slots this report frees, so the report can
        claim for them in the same round trip (all outcomes of one lane, not stopping)."""
        lanes = {id(held): held for _, _, held in outcomes}
        if self._stopping or len(lanes) != 1:
            return None, []
        (lane,) = lanes.values()
        taken: list[tuple[str, Delivery]] = []
        others: list[tuple[str, Delivery]] = []
        while len(taken) < len(outcomes) and not lane.inbox.empty():
            item = lane.inbox.get_nowait()
            # A container twin's doorbells are claimed on their own queue, by the serve loop.
            (taken if item[0] == lane.queue else others).append(item)
        for item in others:
            lane.inbox.put_nowait(item)
        return lane, taken

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.STORE_ERRORS.labels("heartbeat").inc()
                log.warning("heartbeat failed: %s", exc)

    async def heartbeat(self) -> None:
        """Renew leases; stop attempts the store no longer honours (killed, lost, cancelled)."""
        ids = list(self._in_flight)
        live = set(await self.store.renew_leases(ids, self.settings.lease_seconds))
        for attempt_id in ids:
            if attempt_id not in live and attempt_id in self._in_flight:
                flight = self._in_flight[attempt_id]
                log.info(
                    "attempt %s is no longer current; stopping it",
                    attempt_id,
                    extra=_ids(flight.task, attempt_id),
                )
                flight.job.cancel()
        await self._register("stopping" if self._stopping else "alive")

    async def renew(self, attempt_id: str) -> None:
        """Renew one attempt's lease now (a handler's heartbeat); stop it if it is lost."""
        live = await self.store.renew_leases([attempt_id], self.settings.lease_seconds)
        flight = self._in_flight.get(attempt_id)
        if attempt_id not in live and flight is not None:
            log.info(
                "attempt %s lost its lease; stopping it",
                attempt_id,
                extra=_ids(flight.task, attempt_id),
            )
            flight.job.cancel()

    async def _kill_check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.kill_check_seconds)
            if not self._in_flight:
                continue
            try:
                await self.kill_check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kill check failed: %s", exc)

    async def kill_check(self) -> int:
        """Stop attempts whose task is no longer running with them (killed, timed out)."""
        ids = list(self._in_flight)
        live = set(await self.store.live_attempts(ids))
        stopped = 0
        for attempt_id in ids:
            flight = self._in_flight.get(attempt_id)
            if attempt_id not in live and flight is not None:
                log.info(
                    "attempt %s was killed; stopping it",
                    attempt_id,
                    extra=_ids(flight.task, attempt_id),
                )
                flight.job.cancel()
                stopped += 1
        return stopped

    def cancel_tasks(self, task_ids: Sequence[str]) -> int:
        """Stop running attempts of these tasks at once; return how many were found."""
        wanted = set(task_ids)
        found = 0
        for flight in list(self._in_flight.values()):
            if flight.task.id in wanted:
                flight.job.cancel()
                found += 1
        return found

    def cancel_task(self, task_id: str) -> bool:
        """Stop a running attempt of ``task_id`` in this process at once (kill)."""
        for flight in list(self._in_flight.values()):
            if flight.task.id == task_id:
                flight.job.cancel()
                return True
        return False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
