"""The PostgreSQL store's estimate of the server clock (no server needed: a scripted
connection stands in for asyncpg, since a one-sided delay cannot be caused at will)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from treadle.store import postgres
from treadle.store.postgres import PostgresStore

SERVER_AHEAD = timedelta(milliseconds=250)


class OneSidedDelays:
    """Answers ``SELECT clock_timestamp()`` with a clock ``SERVER_AHEAD`` of ours, after a
    scripted delay on the way there (before the stamp) and back (after it)."""

    def __init__(self, legs: list[tuple[float, float]]) -> None:
        self.legs = legs
        self.calls = 0

    async def fetchval(self, query: str) -> datetime:
        assert query == "SELECT clock_timestamp()"
        there, back = self.legs[self.calls % len(self.legs)]
        self.calls += 1
        await asyncio.sleep(there)
        stamp = datetime.now(UTC) + SERVER_AHEAD
        await asyncio.sleep(back)
        return stamp


async def test_the_fastest_round_trip_sets_the_offset() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:5432/unused")
    # The first round trips are slow on one leg only: their midpoints are 40 ms off.
    script = OneSidedDelays([(0.08, 0.0), (0.0, 0.08), (0.0, 0.0), (0.0, 0.0)])
    await store._sample_clock(script)
    assert script.calls == postgres.CLOCK_ROUND_TRIPS
    assert store._offset is not None
    error = abs((store._offset - SERVER_AHEAD).total_seconds())
    assert error < 0.02, f"offset off by {error * 1000:.1f} ms"
    assert store._uncertainty < 0.02
    estimate = await store.now()  # fresh sample: no round trip to the (absent) server
    assert abs(estimate - (datetime.now(UTC) + SERVER_AHEAD)) < timedelta(milliseconds=20)
    await store.close()
