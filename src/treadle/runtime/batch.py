"""Batch handlers: ``@treadle.handler("t", batch_size=..., batch_wait=...)`` (Igor's model).

A batch handler is called once with a list of :class:`BatchItem`; each has ``.task`` (``id``,
``name``, ``args``) and settable ``.status`` and ``.message``. Attempts of the same handler
running in one worker process are gathered until ``batch_size`` are waiting or ``batch_wait``
seconds passed since the first, then the handler runs and each attempt ends as its item says:
``completed`` (the default), ``skipped`` (completed, the output says so) or ``errored`` (the
attempt fails with the message, without retry). If the handler raises, every attempt of the
batch fails with that error (retried as the task's retry policy says).
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

from treadle.runtime.base import TaskFailed
from treadle.worker.handlers import HandlerInfo

STATUSES = ("completed", "skipped", "errored")
DEFAULT_WAIT = 2.0  # Igor's aggregation delay


@dataclass(frozen=True, slots=True)
class BatchTask:
    """The task an item stands for."""

    id: str
    name: str
    args: dict[str, Any]


@dataclass(slots=True)
class BatchItem:
    """One attempt in a batch; the handler may set ``status`` and ``message``."""

    task: BatchTask
    status: str = "completed"
    message: str = ""

    def set_error(self, message: str) -> None:
        self.status, self.message = "errored", message

    def set_skip(self, message: str = "") -> None:
        self.status, self.message = "skipped", message

    def set_complete(self, message: str = "") -> None:
        self.status, self.message = "completed", message


@dataclass(slots=True)
class _Collector:
    info: HandlerInfo
    waiting: list[tuple[BatchItem, asyncio.Future[BatchItem]]] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return max(self.info.batch_size or 1, 1)

    def submit(self, item: BatchItem) -> asyncio.Future[BatchItem]:
        future: asyncio.Future[BatchItem] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if len(self.waiting) >= self.size:
            self._start(self._take())
        elif self.timer is None:
            self.timer = asyncio.create_task(self._after_wait())
        return future

    def _take(self) -> list[tuple[BatchItem, asyncio.Future[BatchItem]]]:
        batch, self.waiting = self.waiting[: self.size], self.waiting[self.size :]
        if not self.waiting and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return batch

    async def _after_wait(self) -> None:
        wait = self.info.batch_wait if self.info.batch_wait is not None else DEFAULT_WAIT
        await asyncio.sleep(wait)
        self.timer = None
        while self.waiting:
            self._start(self._take())

    def _start(self, batch: list[tuple[BatchItem, asyncio.Future[BatchItem]]]) -> None:
        task = asyncio.create_task(self._call(batch))
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)

    async def _call(self, batch: list[tuple[BatchItem, asyncio.Future[BatchItem]]]) -> None:
        items = [item for item, _ in batch]
        try:
            if self.info.is_async:
                await self.info.func(items)
            else:
                context = contextvars.copy_context()
                await asyncio.to_thread(context.run, self.info.func, items)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            for _, future in batch:
                if not future.done():
                    future.set_exception(TaskFailed(message, error_type=type(exc).__name__))
            return
        for item, future in batch:
            if not future.done():
                future.set_result(item)


_RUNNING: set[asyncio.Task[None]] = set()
_COLLECTORS: dict[tuple[str, int], _Collector] = {}


def is_batch(info: HandlerInfo) -> bool:
    return info.batch_size is not None or info.batch_wait is not None


async def run_batched(info: HandlerInfo, task: BatchTask) -> dict[str, Any]:
    """Queue ``task`` for ``info``'s next batch and wait for its verdict (the output)."""
    key = (info.name, id(asyncio.get_running_loop()))
    collector = _COLLECTORS.get(key)
    if collector is None or collector.info is not info:
        collector = _COLLECTORS[key] = _Collector(info)
    item = await collector.submit(BatchItem(task))
    status = item.status.lower()
    if status not in STATUSES:
        raise TaskFailed(
            f"batch handler {info.name!r} set status {item.status!r}; use one of {STATUSES}",
            retryable=False,
        )
    if status == "errored":
        raise TaskFailed(item.message or "errored", error_type="Errored", retryable=False)
    return {"status": status, "message": item.message}
