"""Batch handlers, in process: gathering by size and by wait, statuses, handler errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from treadle.runtime.base import TaskFailed
from treadle.runtime.batch import BatchItem, BatchTask, run_batched
from treadle.worker.handlers import HandlerInfo


def info(func: object, size: int | None, wait: float | None, name: str = "b") -> HandlerInfo:
    return HandlerInfo(name, func, asyncio.iscoroutinefunction(func), size, wait)  # type: ignore[arg-type]


def tasks(n: int) -> list[BatchTask]:
    return [BatchTask(f"id{i}", f"t{i}", {"i": i}) for i in range(n)]


async def test_full_batches_go_at_once_and_the_rest_after_the_wait() -> None:
    calls: list[list[str]] = []

    async def handle(work: list[BatchItem]) -> None:
        calls.append([w.task.name for w in work])

    h = info(handle, 2, 0.3)
    started = time.monotonic()
    results = await asyncio.gather(*(run_batched(h, t) for t in tasks(5)))
    assert calls == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    assert time.monotonic() - started >= 0.3  # the odd one waited for batch_wait
    assert results == [{"status": "completed", "message": ""}] * 5


async def test_a_lone_task_waits_only_batch_wait() -> None:
    seen: list[int] = []
    h = info(lambda work: seen.append(len(work)), 100, 0.05, "sync")
    started = time.monotonic()
    assert (await run_batched(h, tasks(1)[0]))["status"] == "completed"
    assert seen == [1] and time.monotonic() - started < 2


async def test_statuses_and_messages() -> None:
    def handle(work: list[BatchItem]) -> None:
        work[0].set_error("bad input")
        work[1].set_skip("later")
        work[2].message = "fine"
        work[3].status = "weird"

    h = info(handle, 4, 5.0, "statuses")
    outcomes = await asyncio.gather(*(run_batched(h, t) for t in tasks(4)), return_exceptions=True)
    error, skipped, done, weird = outcomes
    assert isinstance(error, TaskFailed) and error.message == "bad input" and not error.retryable
    assert skipped == {"status": "skipped", "message": "later"}
    assert done == {"status": "completed", "message": "fine"}
    assert isinstance(weird, TaskFailed) and "weird" in weird.message


async def test_a_raising_handler_fails_every_attempt_of_its_batch() -> None:
    async def handle(work: list[BatchItem]) -> None:
        raise RuntimeError("queue down")

    h = info(handle, 2, 0.2, "raising")
    outcomes = await asyncio.gather(*(run_batched(h, t) for t in tasks(2)), return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, TaskFailed) and outcome.retryable
        assert "queue down" in outcome.message
    with pytest.raises(TaskFailed):
        await run_batched(h, tasks(1)[0])
