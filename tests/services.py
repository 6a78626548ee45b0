"""What a test does when a service or tool it needs is missing.

Under CI (``CI`` set) every service must be there, so a missing one fails the test; on a
developer's machine it skips, with the reason.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_module(name: str) -> None:
    """A test dependency must import: fail under CI, skip elsewhere (``pytest.importorskip``
    would skip under CI too)."""
    try:
        importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{name} cannot be imported: {exc}")


def service_down(name: str, reason: object) -> NoReturn:
    """``name`` cannot be reached: fail under CI, skip elsewhere."""
    unavailable(f"{name} is not reachable: {reason}")


def run_setup_script(script: Path, what: str) -> None:
    """Run one of the project's idempotent setup scripts; a failure is :func:`unavailable`."""
    try:
        done = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False
        )
        problem = None if done.returncode == 0 else (done.stdout + done.stderr)[-3000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = str(exc)
    if problem is not None:
        unavailable(f"{what} setup failed:\n{problem}")
