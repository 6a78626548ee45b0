"""The ``python`` kind: call a registered handler with the task's ``args``."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Mapping
from typing import Any

from treadle.runtime.base import AttemptContext, TaskFailed
from treadle.runtime.batch import BatchTask, is_batch, run_batched
from treadle.worker.handlers import (
    AttemptInfo,
    get_handler,
    reset_current_attempt,
    set_current_attempt,
)
from treadle.worker.typed import validate_args


def _json_ready(value: Any, handler: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError) as exc:
        raise TaskFailed(
            f"handler {handler!r} returned a value that is not JSON: {exc}", retryable=False
        ) from exc


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_BEATS: set[object] = set()  # in-flight lease renewals, kept referenced until done


def _heartbeat_caller(ctx: AttemptContext) -> Callable[[], None] | None:
    """A function any thread may call to renew the lease on the worker's event loop."""
    beat = ctx.heartbeat
    if beat is None:
        return None
    loop = asyncio.get_running_loop()

    def call() -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(beat())
            _BEATS.add(task)
            task.add_done_callback(_BEATS.discard)
        else:  # a sync handler's thread
            future = asyncio.run_coroutine_threadsafe(beat(), loop)
            _BEATS.add(future)
            future.add_done_callback(_BEATS.discard)

    return call


async def run_python(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    name = str(spec.get("handler", ""))
    try:
        info = get_handler(name)
    except LookupError as exc:
        raise TaskFailed(str(exc), error_type="HandlerNotFound", retryable=False) from exc
    if is_batch(info):
        task = BatchTask(ctx.task_id, ctx.task_name, dict(spec.get("args") or {}))
        return await run_batched(info, task)
    args = validate_args(info.func, name, spec.get("args") or {})
    attempt = AttemptInfo(
        ctx.run_id,
        ctx.task_id,
        ctx.task_name,
        ctx.attempt_id,
        ctx.attempt_number,
        ctx.log,
        _heartbeat=_heartbeat_caller(ctx),
        trace_headers=dict(ctx.trace_headers),
    )
    token = set_current_attempt(attempt)
    try:
        if info.is_async:
            result = await info.func(**args)
        else:
            # Copy the context so current_attempt() works in the worker thread.
            context = contextvars.copy_context()
            result = await asyncio.to_thread(lambda: context.run(info.func, **args))
    except asyncio.CancelledError:
        attempt.cancelled.set()
        raise
    except TaskFailed:
        raise
    except TypeError as exc:
        raise TaskFailed(
            f"handler {name!r} rejected its arguments: {exc}", error_type="TypeError"
        ) from exc
    except Exception as exc:
        raise TaskFailed(f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__) from exc
    finally:
        reset_current_attempt(token)
    return _json_ready(result, name)
