"""Property test: random interleavings of the real scheduler, worker claims and outcomes, lease
loss and operator control never move a run or a task along a transition DESIGN.md §3 forbids.

The machine drives the real pieces against a real SQLite store, one step at a time: the
coordinator's ``advance`` (scheduler), ``store.claim`` and ``store.finish_attempts`` (what a
worker does), and :class:`~treadle.engine.control.Control` (what an operator does).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from treadle.broker.memory import MemoryBroker
from treadle.engine.control import OPERATIONS, Control
from treadle.engine.coordinator import Coordinator
from treadle.engine.service import EngineService
from treadle.errors import TreadleError
from treadle.model.states import (
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    RunStatus,
    TaskStatus,
)
from treadle.store.factory import open_store
from treadle.store.records import AttemptOutcome

DEFINITION: dict[str, Any] = {
    "name": "machine",
    "tasks": [
        {"name": "a", "kind": "noop"},
        {"name": "b", "kind": "noop", "depends_on": ["a"]},
        {"name": "c", "kind": "noop", "depends_on": []},
        {"name": "d", "kind": "noop", "depends_on": ["b", "c"], "trigger_rule": "all_done"},
    ],
}
NAMES = [t["name"] for t in DEFINITION["tasks"]]


_TEMPLATE: dict[str, Path] = {}


def _migrated_db() -> Path:
    """One migrated SQLite file, copied for each example (migrating each time is slow)."""
    if "db" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="treadle-sm-template-"))
        store = open_store(f"sqlite:///{folder / 'template.db'}")

        async def migrate() -> None:
            await store.migrate()
            await store.close()

        asyncio.run(migrate())
        _TEMPLATE["db"] = folder / "template.db"
    return _TEMPLATE["db"]


class RunStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="treadle-sm-"))
        shutil.copy(_migrated_db(), self.folder / "sm.db")
        self.store = open_store(f"sqlite:///{self.folder / 'sm.db'}")
        self.broker = MemoryBroker()
        self.run_id = ""
        self.tasks: dict[str, Any] = {}
        self.run_status = ""
        self.old_attempts: list[tuple[str, str]] = []
        self.history: list[str] = []

    def _do(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize()
    def start(self) -> None:
        async def setup() -> None:
            await self.broker.connect()
            service = EngineService(self.store, self.broker)
            self.coordinator = Coordinator(self.store, self.broker)
            self.control = Control(self.store, self.broker)
            run = await service.start_run(DEFINITION, {})
            self.run_id = run.id

        self._do(setup())
        self._snapshot(check=False)

    def teardown(self) -> None:
        async def close() -> None:
            await self.broker.close()
            await self.store.close()

        self._do(close())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- what happens to the run --------------------------------------------------------
    @rule()
    def advance(self) -> None:
        self._do(self.coordinator.advance([self.run_id]))
        self._step("advance")

    @rule(name=st.sampled_from(NAMES))
    def claim(self, name: str) -> None:
        task = self.tasks.get(name)
        if task is None or task.status != TaskStatus.QUEUED:
            return
        self._do(self.store.claim([task.id], "worker-1", 30.0))
        self._step(f"claim {name}")

    @rule(
        name=st.sampled_from(NAMES),
        outcome=st.sampled_from(["completed", "failed", "retry", "cancelled"]),
    )
    def finish(self, name: str, outcome: str) -> None:
        task = self.tasks.get(name)
        if task is None or task.status != TaskStatus.RUNNING or not task.attempt_id:
            return
        status = {"retry": "failed"}.get(outcome, outcome)
        task_status = {"retry": "queued"}.get(outcome, outcome)
        self._do(
            self.store.finish_attempts(
                [AttemptOutcome(task.attempt_id, task.id, status, task_status, error=outcome)]
            )
        )
        self.old_attempts.append((task.attempt_id, task.id))
        self._step(f"finish {name} {outcome}")

    @rule(outcome=st.sampled_from(["completed", "failed"]))
    def late_worker(self, outcome: str) -> None:
        """A worker whose attempt is no longer current reports: fencing must drop it."""
        for attempt_id, task_id in self.old_attempts:
            current = self._do(self.store.get_task(task_id))
            if current.attempt_id == attempt_id:
                continue
            accepted = self._do(
                self.store.finish_attempts(
                    [AttemptOutcome(attempt_id, task_id, outcome, outcome, error="late")]
                )
            )
            assert accepted == [], f"stale attempt {attempt_id} was accepted"
        self._step(f"late {outcome}")

    @rule(op=st.sampled_from(OPERATIONS), name=st.sampled_from([*NAMES, "<run>"]))
    def operate(self, op: str, name: str) -> None:
        if name == "<run>":
            kind, target = "run", self.run_id
        else:
            kind, target = "task", self.tasks[name].id
        # An operation not allowed in this state raises; what it changed is checked below.
        with contextlib.suppress(TreadleError):
            self._do(self.control.apply(op, kind, target, None, "prop"))
        self._step(f"{op} {name}")

    # -- checks ---------------------------------------------------------------------------
    def _snapshot(self, check: bool) -> None:
        run = self._do(self.store.get_run(self.run_id))
        tasks = {t.name: t for t in self._do(self.store.get_tasks(self.run_id))}
        if check:
            old_run = RunStatus(self.run_status)
            new_run = RunStatus(run.status)
            assert new_run == old_run or new_run in RUN_TRANSITIONS[old_run], (
                f"run {old_run} -> {new_run} after {self.history}"
            )
            for name, task in tasks.items():
                before = self.tasks.get(name)
                if before is None:
                    continue
                old, new = TaskStatus(before.status), TaskStatus(task.status)
                assert new == old or new in TASK_TRANSITIONS[old], (
                    f"task {name}: {old} -> {new} after {self.history}"
                )
        self.run_status = run.status
        self.tasks = tasks

    def _step(self, what: str) -> None:
        self.history.append(what)
        self._snapshot(check=True)

    @invariant()
    def running_tasks_hold_an_attempt(self) -> None:
        for task in self.tasks.values():
            if task.status == TaskStatus.RUNNING:
                assert task.attempt_id, f"{task.name} running without an attempt"

    @invariant()
    def a_finished_run_has_nothing_in_flight(self) -> None:
        if RunStatus(self.run_status).terminal:
            busy = [t.name for t in self.tasks.values() if t.status in ("queued", "running")]
            assert not busy, f"run {self.run_status} with {busy} in flight after {self.history}"


RunStateMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
test_run_state_machine = RunStateMachine.TestCase
