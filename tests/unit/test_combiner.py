"""The coordinator's group commit (engine/combiner.py): batching, errors, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from treadle.engine.combiner import Combiner


class Recorder:
    """A batch function that doubles numbers, fails a whole batch holding 98, and errs on 99."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.singles: list[int] = []

    async def batch(self, requests: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(requests))
        await asyncio.sleep(0.01)  # a store round trip: others queue up meanwhile
        if 98 in requests:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"bad {r}") if r == 99 else r * 2 for r in requests]

    async def single(self, request: int) -> int:
        self.singles.append(request)
        if request in (99, 98):
            raise ValueError(f"bad {request}")
        return request * 2


async def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single)
    results = await asyncio.gather(*(combiner.submit(n) for n in range(10)))
    assert results == [n * 2 for n in range(10)]
    # The first request may go alone (nothing else was waiting yet); the rest go together.
    assert sum(len(b) for b in recorder.batches) + len(recorder.singles) == 10
    assert len(recorder.batches) + len(recorder.singles) <= 2
    assert combiner.batches == len(recorder.batches) >= 1


async def test_requests_made_while_a_batch_is_in_flight_form_the_next_batch() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single)
    first = [asyncio.create_task(combiner.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0.003)  # the first batch is now waiting on its round trip
    second = [asyncio.create_task(combiner.submit(n)) for n in (4, 5, 6)]
    assert await asyncio.gather(*first, *second) == [2, 4, 6, 8, 10, 12]
    assert recorder.batches == [[1, 2, 3], [4, 5, 6]]


async def test_a_per_request_error_reaches_only_its_caller() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single)
    results = await asyncio.gather(
        *(combiner.submit(n) for n in (6, 99, 8)), return_exceptions=True
    )
    assert results[0] == 12 and results[2] == 16
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad 99"


async def test_a_failed_batch_is_retried_one_request_at_a_time() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single)
    results = await asyncio.gather(
        *(combiner.submit(n) for n in (1, 98, 2)), return_exceptions=True
    )
    assert results[0] == 2 and results[2] == 4
    assert isinstance(results[1], ValueError)
    assert recorder.batches == [[1, 98, 2]]
    assert recorder.singles == [1, 98, 2]


async def test_limit_bounds_a_batch() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single, limit=4)
    assert await asyncio.gather(*(combiner.submit(n) for n in range(10))) == [
        n * 2 for n in range(10)
    ]
    assert max(len(b) for b in recorder.batches) <= 4


async def test_a_cancelled_caller_does_not_break_the_others() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder.batch, recorder.single)
    tasks = [asyncio.create_task(combiner.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == 2 and done[2] == 6
    assert isinstance(done[1], asyncio.CancelledError)
    # The combiner still serves new requests afterwards.
    assert await combiner.submit(21) == 42


async def test_close_cancels_what_is_still_waiting() -> None:
    release = asyncio.Event()

    async def stuck(requests: Sequence[int]) -> list[int | BaseException]:
        await release.wait()
        return list(requests)

    async def stuck_one(request: int) -> int:
        await release.wait()
        return request

    combiner: Combiner[int, int] = Combiner(stuck, stuck_one)
    waiting = asyncio.create_task(combiner.submit(1))
    await asyncio.sleep(0.01)
    await combiner.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
