"""The ``sleep`` task type of Igor's README and test worker (registered on import).

Its args (base64 on the wire) are the seconds to sleep as text, e.g. ``"MQ=="`` for 1; none
means no sleep. A user handler registered as ``sleep`` later replaces it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from treadle.runtime.batch import BatchItem
from treadle.worker.handlers import handler

MAX_SLEEP = 3600.0


def _seconds(args: object) -> float:
    text = args.get("args", "") if isinstance(args, dict) else ""
    try:
        raw = base64.b64decode(str(text), validate=True).decode() if text else "0"
        return min(max(float(raw.strip() or 0), 0.0), MAX_SLEEP)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(f"sleep wants a number of seconds as args, got {text!r}") from None


@handler("sleep", batch_size=100, batch_wait=0.05)
async def sleep(work: list[BatchItem]) -> None:
    """Sleep as long as the longest task of the batch asks; a bad value errors that task."""
    longest = 0.0
    for item in work:
        try:
            longest = max(longest, _seconds(item.task.args))
        except ValueError as exc:
            item.set_error(str(exc))
    await asyncio.sleep(longest)
