"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

PY = sys.executable


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once it is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def wait_for_file(path: Path, timeout: float = 15.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def wait_gone(pid: int, timeout: float = 10.0) -> float:
    """Seconds until ``pid`` is gone; fails if it outlives ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while pid_alive(pid):
        if loop.time() - start > timeout:
            raise AssertionError(f"process {pid} still alive after {timeout}s")
        await asyncio.sleep(0.05)
    return loop.time() - start


def sleeper_script(pidfile: Path, seconds: int = 60) -> list[str]:
    """A shell task that records its own pid and the pid of a child, then sleeps."""
    code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep({seconds})'])\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"time.sleep({seconds})\n"
    )
    return [PY, "-c", code]
