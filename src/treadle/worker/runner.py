"""Run one attempt: pick the runtime, apply the timeout, shape the outcome and retry decision."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from treadle.errors import TemplateError
from treadle.model.retry import retry_delay, should_retry
from treadle.model.states import AttemptStatus, TaskStatus
from treadle.model.templating import render_string, render_task_spec
from treadle.runtime.base import AttemptContext, TaskFailed
from treadle.runtime.registry import runtime_for
from treadle.secrets.attempt import AttemptSecrets, SecretSource
from treadle.secrets.refs import NONCE_FIELD
from treadle.store.records import AttemptOutcome, AttemptRecord, TaskRecord

log = logging.getLogger(__name__)


def _extra_outputs(spec: Mapping[str, Any], output: Any) -> Any:
    """Render the task's ``outputs`` templates against its own output and merge them in."""
    extra = spec.get("outputs") or {}
    if not extra:
        return output
    merged = dict(output) if isinstance(output, dict) else {"value": output}
    for name, source in extra.items():
        merged[name] = render_string(str(source), {"output": output}, f"outputs.{name}")
    return merged


async def _execute(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    """Run one spec (the task or a pre/post step) under its timeout; failures as TaskFailed."""
    kind = str(spec.get("kind", ""))
    runtime = runtime_for(kind)
    if runtime is None:
        raise TaskFailed(f"no runtime for task kind {kind!r} on this worker", retryable=False)
    timeout = spec.get("timeout")
    try:
        if timeout:
            # wait_for cancels the runtime: shell kills its process group, http drops the
            # request, async handlers get CancelledError.
            output = await asyncio.wait_for(runtime(spec, ctx), float(timeout))
        else:
            output = await runtime(spec, ctx)
        return _extra_outputs(spec, output)
    except TimeoutError as exc:
        raise TaskFailed(f"timed out after {float(timeout or 0):g}s", error_type="Timeout") from exc
    except TemplateError as exc:
        raise TaskFailed(exc.message, retryable=False) from exc
    except (TaskFailed, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("runtime %s crashed", kind, extra={"task_id": ctx.task_id})
        raise TaskFailed(f"internal error in the {kind} runtime: {exc}") from exc


async def _with_steps(spec: Mapping[str, Any], ctx: AttemptContext, secrets: AttemptSecrets) -> Any:
    """Pre steps, the task, then post steps (always, seeing the outcome) in one workdir."""
    failure: TaskFailed | None = None
    output: Any = None
    for step in spec.get("pre") or []:
        try:
            await _execute(step, ctx)
        except TaskFailed as exc:
            failure = _step_failure("pre", step, exc)
            break
    if failure is None:
        try:
            output = await _execute(spec, ctx)
        except TaskFailed as exc:
            failure = exc
    status = "failed" if failure else "completed"
    main: dict[str, Any] = {
        "status": status,
        "output": failure.output if failure else output,
        "error": failure.message if failure else None,
    }
    context = {**(spec.get("post_context") or {}), "main": main, "secrets": secrets.deferred()}
    ctx.env["TREADLE_MAIN_STATUS"] = status
    ctx.env["TREADLE_MAIN_ERROR"] = failure.message if failure else ""
    for step in spec.get("post") or []:
        try:
            await _execute(await secrets.resolve(render_task_spec(step, context)), ctx)
        except TemplateError as exc:
            failure = failure or TaskFailed(f"post step {step.get('name')}: {exc.message}")
        except TaskFailed as exc:
            failure = failure or _step_failure("post", step, exc)
    if failure is not None:
        raise failure
    return output


def _step_failure(where: str, step: Mapping[str, Any], exc: TaskFailed) -> TaskFailed:
    return TaskFailed(
        f"{where} step {step.get('name')!r} failed: {exc.message}",
        output=exc.output,
        exit_code=exc.exit_code,
        http_status=exc.http_status,
        error_type=exc.error_type,
        retryable=exc.retryable,
    )


async def run_attempt(
    task: TaskRecord,
    attempt: AttemptRecord,
    log_sink: Callable[[str, str], None],
    settings: Mapping[str, Any],
    now: datetime,
    heartbeat: Callable[[], Coroutine[Any, Any, None]] | None = None,
    trace_headers: Mapping[str, str] | None = None,
    secret_source: SecretSource | None = None,
) -> AttemptOutcome:
    """Execute ``attempt`` of ``task`` and describe how it ended (never raises but on cancel).

    Secret references are resolved here, never earlier, and every log line, the output and
    the error go through the attempt's masker before they leave this function.
    """
    spec = task.rendered or task.spec
    secrets = AttemptSecrets(secret_source, spec.get(NONCE_FIELD))
    log_sink = secrets.sink(log_sink)
    try:
        outcome = await _run(
            task, attempt, spec, secrets, log_sink, settings, now, heartbeat, trace_headers
        )
    finally:
        secrets.flush()
    return secrets.mask_outcome(outcome)


async def _run(
    task: TaskRecord,
    attempt: AttemptRecord,
    spec: Mapping[str, Any],
    secrets: AttemptSecrets,
    log_sink: Callable[[str, str], None],
    settings: Mapping[str, Any],
    now: datetime,
    heartbeat: Callable[[], Coroutine[Any, Any, None]] | None,
    trace_headers: Mapping[str, str] | None,
) -> AttemptOutcome:
    ctx = AttemptContext(
        run_id=task.run_id,
        task_id=task.id,
        task_name=task.name,
        attempt_id=attempt.id,
        attempt_number=attempt.number,
        log=log_sink,
        settings=settings,
        heartbeat=heartbeat,
        trace_headers=dict(trace_headers or {}),
    )
    workdir: str | None = None
    try:
        spec = await secrets.resolve(spec)
        # Container tasks run their pre/post containers themselves (they share volumes).
        if (spec.get("pre") or spec.get("post")) and spec.get("kind") != "container":
            # Steps and the task share one scratch directory, removed after the attempt.
            workdir = tempfile.mkdtemp(prefix=f"treadle-{task.id[:8]}-")
            ctx.workdir = Path(workdir)
            ctx.env["TREADLE_WORKDIR"] = workdir
            output = await _with_steps(spec, ctx, secrets)
        else:
            output = await _execute(spec, ctx)
    except TaskFailed as failure:
        log_sink("stderr", f"treadle: {failure.message}\n")
        return _failed(task, attempt, now, failure)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return AttemptOutcome(
        attempt.id, task.id, AttemptStatus.COMPLETED.value, TaskStatus.COMPLETED.value, output, None
    )


def _failed(
    task: TaskRecord, attempt: AttemptRecord, now: datetime, failure: TaskFailed
) -> AttemptOutcome:
    policy = task.spec.get("retry")
    output = failure.output or None
    if should_retry(
        policy,
        attempt.number,
        exit_code=failure.exit_code,
        http_status=failure.http_status,
        error_type=failure.error_type,
        retryable=failure.retryable,
    ):
        assert policy is not None
        delay = retry_delay(policy, attempt.number)
        return AttemptOutcome(
            attempt.id,
            task.id,
            AttemptStatus.FAILED.value,
            TaskStatus.QUEUED.value,
            output,
            failure.message,
            retry_at=now + timedelta(seconds=delay),
        )
    return AttemptOutcome(
        attempt.id,
        task.id,
        AttemptStatus.FAILED.value,
        TaskStatus.FAILED.value,
        output,
        failure.message,
    )
