"""Group commit for the coordinator's store calls.

The coordinator advances many runs at once; each pass reads its run and writes its decision.
Issued one by one, those are two transactions per pass, and on a busy coordinator the time goes
into per-statement overhead, not into the database. A :class:`Combiner` gathers the requests
that concurrent passes make while a batch is being written and sends them as the next batch,
so N passes cost one transaction with a few statements. Callers keep their one-request view.

When a batch fails as a whole (a deadlock, one bad request), every request of it is retried
alone, so one request's error reaches only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

#: What a batch call returns per request: its result, or the exception meant for its caller.
BatchFn = Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]]


class Combiner(Generic[Req, Res]):
    """Sends concurrent requests as batches, one batch in flight at a time."""

    def __init__(
        self,
        batch: BatchFn[Req, Res],
        single: Callable[[Req], Awaitable[Res]],
        limit: int = 200,
    ) -> None:
        self._batch = batch
        self._single = single
        self._limit = limit
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # how many batch calls were made (for tests and metrics)

    async def submit(self, request: Req) -> Res:
        """The result of ``request``, sent together with whatever else is waiting."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def close(self) -> None:
        """Stop the flusher; requests still waiting get a CancelledError."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, future in self._pending:
            future.cancel()
        self._pending = []

    async def _flush(self) -> None:
        while self._pending:
            # One turn of the loop lets passes that are about to ask join this batch.
            await asyncio.sleep(0)
            taken = self._pending[: self._limit]
            self._pending = self._pending[self._limit :]
            live = [(req, fut) for req, fut in taken if not fut.done()]
            try:
                await self._send(live)
            finally:
                for _, future in live:
                    if not future.done():
                        future.cancel()

    async def _send(self, live: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        if not live:
            return
        if len(live) == 1:
            await self._one(*live[0])
            return
        self.batches += 1
        try:
            results = await self._batch([req for req, _ in live])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("batch of %d failed (%s); sending each alone", len(live), exc)
            for req, future in live:
                await self._one(req, future)
            return
        for (_, future), result in zip(live, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _one(self, request: Req, future: asyncio.Future[Res]) -> None:
        try:
            result = await self._single(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
