"""Bound run/task/attempt ids reach every record, in JSON and in text."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from treadle.cli.common import configure_logging
from treadle.observability import logcontext


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        yield lambda: capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.captureWarnings(False)


def test_json_lines_carry_the_bound_ids_and_explicit_ones_win(captured: Callable[[], str]) -> None:
    configure_logging("info", "json")
    log = logging.getLogger("treadle.test")
    log.info("outside")
    with logcontext.bind("r1"), logcontext.bind(None, "t1", "a1"):
        log.info("inside")
        log.info("explicit", extra={"task_id": "t9"})
    log.info("after")
    records = [json.loads(line) for line in captured().splitlines()]
    ids = [{k: r.get(k) for k in ("run_id", "task_id", "attempt_id")} for r in records]
    assert ids == [
        {"run_id": None, "task_id": None, "attempt_id": None},
        {"run_id": "r1", "task_id": "t1", "attempt_id": "a1"},
        {"run_id": "r1", "task_id": "t9", "attempt_id": "a1"},
        {"run_id": None, "task_id": None, "attempt_id": None},
    ]


def test_text_lines_show_the_ids_after_the_message(captured: Callable[[], str]) -> None:
    configure_logging("info", "text")
    with logcontext.bind("r1", "t1", "a1"):
        logging.getLogger("treadle.test").warning("slow")
    assert captured().rstrip().endswith("slow [run=r1 task=t1 attempt=a1]")


async def test_bindings_stay_within_their_asyncio_task(captured: Callable[[], str]) -> None:
    configure_logging("info", "json")
    log = logging.getLogger("treadle.test")

    async def attempt(n: int) -> None:
        with logcontext.bind(f"r{n}", f"t{n}", f"a{n}"):
            await asyncio.sleep(0.01)
            log.info("attempt %d", n)

    await asyncio.gather(attempt(1), attempt(2))
    records = {r["message"]: r for r in map(json.loads, captured().splitlines())}
    assert records["attempt 1"]["attempt_id"] == "a1"
    assert records["attempt 2"]["attempt_id"] == "a2"
