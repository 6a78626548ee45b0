"""Python handlers the integration tests' worker processes import (``--import``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import treadle
from treadle.worker.handlers import current_attempt


@treadle.handler("it_sleep")
async def it_sleep(seconds: float = 0.1) -> dict[str, Any]:
    """Sleep without blocking the worker's loop (heartbeats keep going)."""
    await asyncio.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid()}


@treadle.handler("it_die")
def it_die() -> None:
    """A poison task: kill the worker process that runs it, at once and without cleanup."""
    os.kill(os.getpid(), signal.SIGKILL)


@treadle.handler("it_mark")
async def it_mark(path: str, seconds: float = 0.0) -> dict[str, Any]:
    """Sleep, then append this attempt's id to ``path`` (counts how often the body ran)."""
    await asyncio.sleep(seconds)
    attempt = current_attempt()
    with Path(path).open("a") as sink:
        sink.write(f"{attempt.attempt_id} {os.getpid()} {time.time():.3f}\n")
    return {"attempt": attempt.attempt_id}


@treadle.handler("it_mark_blocking")
def it_mark_blocking(path: str, seconds: float = 0.0) -> dict[str, Any]:
    """Like ``it_mark`` but in a thread: cancelling the attempt cannot stop the body, so a
    frozen-then-resumed worker always finishes it and reports a (late) result."""
    time.sleep(seconds)
    attempt = current_attempt()
    with Path(path).open("a") as sink:
        sink.write(f"{attempt.attempt_id} {os.getpid()} {time.time():.3f}\n")
    return {"attempt": attempt.attempt_id}
