"""The runtime contract: run one attempt of a rendered task spec and return its output.

A runtime gets the task's rendered spec (its native JSON document with templates expanded) and
an :class:`AttemptContext`. It returns the output object, or raises :class:`TaskFailed` with
whatever output it has (exit code, status) so retry rules can look at it. Cancellation (kill,
timeout) arrives as :class:`asyncio.CancelledError`; runtimes must stop their process, request
or container and re-raise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from treadle.errors import TreadleError

OUTPUT_TEXT_LIMIT = 64 * 1024


class TaskFailed(TreadleError):
    """An attempt ended in failure. ``output`` is kept; ``error_type`` feeds ``retry.on``."""

    code = "task_failed"

    def __init__(
        self,
        message: str,
        *,
        output: Mapping[str, Any] | None = None,
        exit_code: int | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.output = dict(output or {})
        self.exit_code = exit_code
        self.http_status = http_status
        self.error_type = error_type or type(self).__name__
        self.retryable = retryable


LogSink = Callable[[str, str], None]  # (stream, text)


@dataclass(slots=True)
class AttemptContext:
    """What a runtime knows about the attempt it runs."""

    run_id: str
    task_id: str
    task_name: str
    attempt_id: str
    attempt_number: int
    log: LogSink
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Renews the attempt's lease now; set by the worker (None when run outside one).
    heartbeat: Callable[[], Coroutine[Any, Any, None]] | None = None
    # W3C trace context of the attempt's span (empty unless tracing is configured).
    trace_headers: dict[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    """Executes one task kind."""

    kinds: tuple[str, ...]

    async def run(self, spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
        """Run the attempt; return the output object or raise TaskFailed."""
        ...


RuntimeFn = Callable[[Mapping[str, Any], AttemptContext], Awaitable[Any]]


def cap_text(text: str, limit: int = OUTPUT_TEXT_LIMIT) -> str:
    """Keep at most ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [truncated {len(text) - limit} characters]"
