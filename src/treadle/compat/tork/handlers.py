"""Handlers the Tork translation relies on (registered on import)."""

from __future__ import annotations

from typing import NoReturn

from treadle.compat.tork.translate import NO_CONTAINER_HANDLER
from treadle.runtime.base import TaskFailed
from treadle.worker.handlers import handler


@handler(NO_CONTAINER_HANDLER)
def no_container_runtime(image: str = "", **_: object) -> NoReturn:
    """Stand-in for an image task on a treadle without the ``container`` task kind."""
    raise TaskFailed(
        f"no container runtime configured: this task needs image {image!r}, but this treadle "
        "has no container task kind; run it where containers are enabled, or give the task a "
        "`run` script or `cmd` without an image to run it as a shell command",
        error_type="NoContainerRuntime",
        retryable=False,
    )
