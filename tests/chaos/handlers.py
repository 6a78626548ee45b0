"""Task bodies the chaos suite's workers import (``--import tests.chaos.handlers``).

Each body appends one line to a ledger file when it starts and one when it ends:
``start|end <task_id> <attempt_id> <pid> <unix time>``. The file has no uniqueness at all, so
it shows how many times each body really ran, whatever the store says.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import treadle
from treadle.worker.handlers import current_attempt


def _mark(ledger: str, what: str) -> str:
    attempt = current_attempt()
    line = f"{what} {attempt.task_id} {attempt.attempt_id} {os.getpid()} {time.time():.6f}\n"
    # One small O_APPEND write per line: lines of concurrent bodies never interleave.
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return attempt.attempt_id


@treadle.handler("chaos_body")
async def chaos_body(ledger: str, seconds: float = 0.0) -> dict[str, Any]:
    """Record the start, sleep without blocking the loop (heartbeats go on), record the end."""
    attempt_id = _mark(ledger, "start")
    await asyncio.sleep(seconds)
    _mark(ledger, "end")
    return {"attempt": attempt_id}


@treadle.handler("chaos_block")
def chaos_block(ledger: str, seconds: float = 0.0) -> dict[str, Any]:
    """Like ``chaos_body`` in a thread: cancelling the attempt cannot stop it, so a frozen and
    resumed worker always finishes the body and reports a (late) result."""
    attempt_id = _mark(ledger, "start")
    time.sleep(seconds)
    _mark(ledger, "end")
    return {"attempt": attempt_id}


@treadle.handler("chaos_die")
def chaos_die(ledger: str) -> None:
    """A poison task: record the start, then kill the worker process without any cleanup."""
    _mark(ledger, "start")
    os.kill(os.getpid(), signal.SIGKILL)
