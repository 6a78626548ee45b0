"""Fault-injection points for treadle's own chaos tests (tests/chaos); inert otherwise.

A pause point does nothing unless the environment variable ``TREADLE_FAULT_DIR`` names a folder
that holds a file ``<point>.pause``. The first process to reach the point then renames it to
``<point>.held``, writes its pid to ``<point>.reached`` and waits until the test deletes
``<point>.held`` (at most :data:`MAX_PAUSE` seconds). The point is one-shot: later arrivals pass.

This lets a test freeze one role at an exact place (the lease sweeper between its read and its
write) while it makes something else happen, which a timed sleep could not do reliably.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

#: A forgotten pause never wedges a process for longer than this.
MAX_PAUSE = 120.0


async def pause_point(name: str) -> None:
    """Wait here if a test armed ``name`` (see the module docstring); otherwise return at once."""
    folder = os.environ.get("TREADLE_FAULT_DIR")
    if not folder:
        return
    gate, held = Path(folder) / f"{name}.pause", Path(folder) / f"{name}.held"
    try:
        gate.rename(held)  # atomic: exactly one arrival takes the pause
    except FileNotFoundError:
        return
    (Path(folder) / f"{name}.reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + MAX_PAUSE
    while held.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
