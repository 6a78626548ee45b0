"""Kinds that need no process: log, sleep, noop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from treadle.runtime.base import AttemptContext


async def run_noop(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    return {}


async def run_log(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    message = str(spec.get("message", ""))
    ctx.log("stdout", message + "\n")
    return {"message": message}


async def run_sleep(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    seconds = float(spec.get("seconds", 0))
    await asyncio.sleep(seconds)
    return {"slept": seconds}
